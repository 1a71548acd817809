import numpy as np
import pytest

from gradbench.model import ACTIVATIONS, LOSSES, Network, logsumexp


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("N", "L"), [(1, 1), (3, 2), (8, 5)])
def test_parameter_count(N, L, bias):
    expected = L * (N * N + N) if bias else L * N * N
    assert Network(N, L, bias=bias).P == expected


def test_layers_are_zero_copy_views_in_order():
    net = Network(3, 2)
    theta = np.arange(net.P, dtype=float)
    layers = net.layers(theta)
    assert all(np.shares_memory(layer.W, theta) for layer in layers)
    assert all(np.shares_memory(layer.b, theta) for layer in layers)
    assert layers[0].W[0, 1] == 1.0  # W row-major first
    assert layers[0].b[0] == 9.0  # then b
    assert layers[1].W[0, 0] == 12.0  # then the next layer
    layers[1].b[2] = -1.0
    assert theta[-1] == -1.0


def test_stacked_views_match_single():
    net = Network(4, 3)
    thetas = np.random.default_rng(0).standard_normal((5, net.P))
    stacked = net.layers(thetas)
    for k in range(5):
        for single, many in zip(net.layers(thetas[k]), stacked, strict=True):
            np.testing.assert_array_equal(single.W, many.W[k])
            np.testing.assert_array_equal(single.b, many.b[k])


def test_forward_matches_a_hand_written_loop():
    net = Network(3, 3, activation="sigmoid")
    rng = np.random.default_rng(0)
    theta, X = net.init(rng), rng.standard_normal((7, 3))
    h = X
    for l in range(3):
        W = theta[l * 12 : l * 12 + 9].reshape(3, 3)
        b = theta[l * 12 + 9 : (l + 1) * 12]
        z = h @ W + b
        h = z if l == 2 else 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(net.run(net.layers(theta), X), h, rtol=1e-14)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_derivative_from_its_output(name):
    act = ACTIVATIONS[name]
    z = np.linspace(-3, 3, 101) + 0.013  # avoid relu's kink at 0
    numeric = (act.f(z + 1e-6) - act.f(z - 1e-6)) / 2e-6
    np.testing.assert_allclose(act.df(act.f(z)), numeric, atol=1e-8)


def test_losses_by_hand():
    Z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = np.array([1, 2])
    ce = np.mean([np.log(np.exp(r).sum()) - r[c] for r, c in zip(Z, y, strict=True)])
    assert LOSSES["cross_entropy"].value(Z, y) == pytest.approx(ce, rel=1e-14)
    T = np.ones_like(Z)
    assert LOSSES["mse"].value(Z, T) == pytest.approx(0.5 * ((Z - 1) ** 2).sum() / 2)


def test_logsumexp_is_stable_and_complex_safe():
    Z = np.array([[1000.0, 1000.0]])
    assert logsumexp(Z)[0] == pytest.approx(1000 + np.log(2))
    Zc = Z + 1e-30j * np.array([[1.0, 0.0]])
    assert logsumexp(Zc)[0].imag == pytest.approx(0.5e-30)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"N": 0, "L": 1}, "N must be a positive integer"),
        ({"N": -3, "L": 1}, "N must be a positive integer"),
        ({"N": 2, "L": 0}, "L must be a positive integer"),
        ({"N": 2.5, "L": 1}, "N must be a positive integer"),
        ({"N": 2, "L": 1, "activation": "gelu"}, "unknown activation"),
        ({"N": 2, "L": 1, "dtype": "float16"}, "unknown dtype"),
    ],
)
def test_invalid_network_is_refused_with_a_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Network(**kwargs)
