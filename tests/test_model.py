import keras

from stages.model import build_model, build_optimizer
from tests.conftest import project_params


def test_default_model_is_the_seed_cnn():
    model = build_model(project_params()["train"]["model"])

    assert model.count_params() == 872_714
    layers = [(type(layer).__name__, layer.output.shape[1:]) for layer in model.layers]
    assert layers == [
        ("Conv2D", (24, 24, 32)),
        ("Conv2D", (20, 20, 64)),
        ("MaxPooling2D", (10, 10, 64)),
        ("Flatten", (6400,)),
        ("Dropout", (6400,)),
        ("Dense", (128,)),
        ("Dropout", (128,)),
        ("Dense", (10,)),
    ]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.5, 0.5]
    assert model.layers[-1].activation is keras.activations.softmax


def test_default_optimizer_is_keras_2_adadelta():
    optimizer = build_optimizer(project_params()["train"]["optimizer"])
    assert isinstance(optimizer, keras.optimizers.Adadelta)
    assert float(optimizer.learning_rate) == 1.0
    assert (optimizer.rho, optimizer.epsilon) == (0.95, 1e-7)

