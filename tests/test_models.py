"""core.models: both architectures layer for layer, the registry (names, colours), and the
test-only probe model (its registration: tests/test_registry.py)."""

from __future__ import annotations

import pytest

from core.models import MODEL_NAMES, REGISTRY, get_spec, model_color, model_label

EXPECTED = {
    "baseline": [
        ("Conv2D", (26, 26, 32), 320),
        ("MaxPooling2D", (13, 13, 32), 0),
        ("Conv2D", (11, 11, 64), 18_496),
        ("Conv2D", (9, 9, 64), 36_928),
        ("MaxPooling2D", (4, 4, 64), 0),
        ("Flatten", (1024,), 0),
        ("Dense", (128,), 131_200),
        ("Dense", (10,), 1_290),
    ],
    "residual": [
        ("Conv2D", (28, 28, 32), 320),
        ("MaxPooling2D", (14, 14, 32), 0),
        ("Conv2D", (14, 14, 64), 18_496),
        ("Conv2D", (14, 14, 64), 2_112),  # the 1x1 shortcut
        ("MaxPooling2D", (7, 7, 64), 0),
        ("MaxPooling2D", (7, 7, 64), 0),
        ("Add", (7, 7, 64), 0),
        ("Conv2D", (7, 7, 64), 36_928),
        ("Flatten", (3136,), 0),
        ("Dense", (64,), 200_768),
        ("Dense", (10,), 650),
    ],
}


def layer_rows(model):
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        rows.append((kind, tuple(layer.output.shape[1:]), layer.count_params()))
    return rows


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_layers_shapes_and_parameters(name):
    model = get_spec(name).build()
    rows = layer_rows(model)
    assert sorted(rows, key=repr) == sorted(EXPECTED[name], key=repr)
    assert model.count_params() == get_spec(name).params
    assert model.compute_output_shape((None, 28, 28, 1)) == (None, 10)
    assert model.layers[-1].activation.__name__ == "softmax"


def test_report_parameter_counts():
    assert get_spec("baseline").params == 188_234
    assert get_spec("residual").params == 259_274


def test_baseline_uses_valid_padding_and_residual_same():
    baseline = get_spec("baseline").build()
    residual = get_spec("residual").build()
    convs = [layer for layer in baseline.layers if type(layer).__name__ == "Conv2D"]
    assert {c.padding for c in convs} == {"valid"}
    convs = [layer for layer in residual.layers if type(layer).__name__ == "Conv2D"]
    assert {c.padding for c in convs} == {"same"}


def test_residual_adds_the_pooled_shortcut_to_the_main_path():
    model = get_spec("residual").build()
    add = next(layer for layer in model.layers if type(layer).__name__ == "Add")
    parents = [t._keras_history.operation for t in add.input]
    assert [type(p).__name__ for p in parents] == ["MaxPooling2D", "MaxPooling2D"]
    grandparents = [p.input._keras_history.operation for p in parents]
    kernels = sorted(g.kernel_size for g in grandparents)
    assert kernels == [(1, 1), (3, 3)]
    # both branches start from the first pooling layer's output
    sources = {id(g.input._keras_history.operation) for g in grandparents}
    assert len(sources) == 1
    assert grandparents[0].activation.__name__ != grandparents[1].activation.__name__


def test_registry_is_what_everything_iterates():
    assert MODEL_NAMES == tuple(REGISTRY) == ("baseline", "residual")
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.display_name and spec.description
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose one of: baseline, residual"):
        get_spec("vgg")


def test_model_colors_are_distinct_and_stable():
    colors = [model_color(name) for name in MODEL_NAMES]
    assert len(set(colors)) == len(colors)
    assert model_color("baseline") == REGISTRY["baseline"].color
    assert model_color("Residual CNN") == REGISTRY["residual"].color
    assert model_color("some_new_model") == model_color("some_new_model")
    assert model_label("residual") == "Residual CNN"
    assert model_label("unregistered") == "unregistered"


def test_the_probe_model_has_the_layers_the_report_models_lack():
    """tests/extra_model.py (registered only by FMNIST_EXTRA_MODELS, see tests/test_registry.py):
    BatchNormalization, Dropout, a stride-2 convolution and global average pooling."""
    from tests.extra_model import SPECS

    (spec,) = SPECS
    assert spec.name not in REGISTRY  # never in the shipped registry
    model = spec.build()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert {"BatchNormalization", "Dropout", "GlobalAveragePooling2D"} <= set(kinds)
    strides = [layer.strides for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert (2, 2) in strides
    assert model.count_params() == spec.params == 14_570
    assert model.compute_output_shape((None, 28, 28, 1)) == (None, 10)
    assert model.layers[-1].activation.__name__ == "softmax"
