import numpy as np
import pytest

from gradbench.model import ACTIVATIONS, LOSSES, Network, dense, logsumexp, row_max, row_sum


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


# Rules the numerical tests above reach only indirectly (found by mutation testing,
# docs/mutation.md): each pinned by one hand-computed value.


@pytest.mark.parametrize("width", [3, 16, 17, 40])
def test_row_max_and_row_sum_by_hand(width):
    A = np.zeros((2, width))
    A[0, 1], A[0, -1], A[1, 0] = 5.0, 7.0, -1.0  # row 0: max at the last column
    A[1, 1:] = -2.0  # row 1: max in the first column
    np.testing.assert_array_equal(row_max(A), [7.0, -1.0])
    np.testing.assert_array_equal(row_max(A[:, :2]), [5.0, -1.0])  # max in the second column
    np.testing.assert_array_equal(row_sum(A), [12.0, -1.0 - 2.0 * (width - 1)])
    assert row_max(A).shape == (2,) and row_max(A[:, :1]).tolist() == [0.0, -1.0]
    stack = np.stack([A, A + 1.0])  # (2, 2, width): over the last axis, not the middle one
    np.testing.assert_array_equal(row_max(stack), [[7.0, -1.0], [8.0, 0.0]])


def test_row_sum_keeps_the_dtype():
    assert row_sum(np.ones((2, 3), np.float32)).dtype == np.float32
    assert row_sum(np.ones((2, 3), np.complex128)).dtype == np.complex128


def test_which_activations_are_analytic():
    assert {name: act.analytic for name, act in ACTIVATIONS.items()} == {
        "tanh": True, "relu": False, "sigmoid": True,
    }  # fmt: skip


def test_relu_is_zero_at_zero_and_keeps_positive_values():
    z = np.array([-2.0, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(ACTIVATIONS["relu"].f(z), [0.0, 0.0, 0.5, 3.0])
    # at the kink a complex step sees relu's one-sided derivative 0, as backprop's df(0) = 0
    assert ACTIVATIONS["relu"].f(np.array([1e-20j]))[0] == 0
    np.testing.assert_array_equal(ACTIVATIONS["relu"].df(np.array([0.0, 3.0])), [0.0, 1.0])


def test_layer_of_each_flat_index():
    net = Network(3, 2)  # 12 parameters per layer
    np.testing.assert_array_equal(net.layer_of(np.array([0, 11, 12, 23])), [0, 0, 1, 1])
    assert Network(3, 2, bias=False).layer_of(9) == 1


def test_init_scales_weights_by_fan_in_and_biases_by_a_tenth():
    net = Network(200, 1)
    layer = net.layers(net.init(np.random.default_rng(0), scale=2.0))[0]
    assert layer.W.std() == pytest.approx(2.0 / np.sqrt(200), rel=0.02)
    assert abs(layer.W.mean()) < 0.002
    assert layer.b.std() == pytest.approx(0.2, rel=0.15)
    assert abs(layer.b.mean()) < 0.05
    default = net.layers(net.init(np.random.default_rng(0)))[0]  # scale 1
    assert default.W.std() == pytest.approx(1.0 / np.sqrt(200), rel=0.02)


def test_run_from_any_layer_and_inputs_of_a_layer_range():
    net = Network(3, 4)
    rng = np.random.default_rng(1)
    layers, X = net.layers(net.init(rng)), rng.standard_normal((5, 3))
    hs = net.inputs(layers, X)
    assert len(hs) == 4 and hs[0] is X
    for l in range(4):
        np.testing.assert_array_equal(net.run(layers, hs[l], start=l), net.run(layers, X))
    segment = net.inputs(layers, hs[1], 1, 3)
    assert len(segment) == 2
    np.testing.assert_array_equal(segment[1], hs[2])
    assert len(net.inputs(layers, hs[3], 3)) == 1


def test_a_stack_of_inputs_goes_through_dense_as_one_product():
    net = Network(3, 1)
    layer = net.layers(net.init(np.random.default_rng(2)))[0]
    H = np.random.default_rng(3).standard_normal((4, 5, 3))
    expected = np.stack([h @ layer.W + layer.b for h in H])
    np.testing.assert_allclose(dense(H, layer), expected, rtol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"N": True, "L": 1}, "N must be a positive integer, got True"),
        ({"N": 2, "L": 1.0}, "L must be a positive integer, got 1.0"),
        ({"N": 2, "L": 1, "loss": "hinge"}, "unknown loss 'hinge'; choose from cross_entropy, mse"),
        (
            {"N": 2, "L": 1, "activation": "gelu"},
            "unknown activation 'gelu'; choose from tanh, relu, sigmoid",
        ),
    ],
)
def test_invalid_network_message_in_full(kwargs, message):
    with pytest.raises(ValueError) as caught:
        Network(**kwargs)
    assert str(caught.value) == message


def test_numpy_integers_are_accepted_as_sizes():
    assert Network(np.int64(3), np.int32(2)).P == 24
