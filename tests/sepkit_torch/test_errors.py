"""One test per bad input: the error type and a message naming the value and the choices."""

from __future__ import annotations

import pytest
import torch

from sepkit_torch import (
    ECMRNet,
    InvalidInputError,
    TaskStateError,
    UnknownTaskError,
    complexity,
    make_optimizer,
    train_step,
)
from sepkit_torch.models import Backbone, BackboneConfig, GResBlock

from .conftest import images

X = images(1, 1, 8, 8)


def test_wrong_channel_count(tiny):
    with pytest.raises(InvalidInputError, match=r"`x` must have 1 channel\(s\).*got 3 in shape"):
        tiny(images(1, 3, 8, 8))


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8), (1, 1, 1, 8, 8)])
def test_not_4d(tiny, shape):
    with pytest.raises(InvalidInputError, match=r"`x` must be 4-D .*got shape"):
        tiny(torch.rand(shape))


def test_empty_batch_or_side(tiny):
    with pytest.raises(InvalidInputError, match=r"batch, H and W >= 1; got shape \(0, 1, 8, 8\)"):
        tiny(torch.rand(0, 1, 8, 8))


def test_not_a_tensor(tiny):
    with pytest.raises(TypeError, match="`x` must be a torch.Tensor; got ndarray"):
        tiny(X.numpy())


def test_integer_images(tiny):
    with pytest.raises(TypeError, match="floating-point tensor; got dtype torch.uint8"):
        tiny(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))


def test_unknown_task(tiny):
    tiny.add_task("C")
    tiny.add_task("B")
    with pytest.raises(UnknownTaskError, match=r"one of the model's tasks \['C', 'B'\].*got 'N'"):
        tiny(X, task="N")
    with pytest.raises(ValueError, match="got 'N'"):  # also a ValueError
        complexity(tiny, (1, 1, 8, 8), task="N")


def test_adding_a_task_twice(tiny):
    tiny.add_task("C")
    with pytest.raises(TaskStateError, match=r"task 'C' was added already.*\['C'\]"):
        tiny.add_task("C")
    assert tiny.task_names == ("C",)


def test_compound_parts_not_added_yet(tiny):
    tiny.add_task("C")
    with pytest.raises(TaskStateError, match=r"\['B'\] not added yet.*tasks are \['C'\]"):
        tiny.add_task("CB", parts=["C", "B"])
    assert tiny.task_names == ("C",)


def test_compound_parts_must_be_single_tasks(tiny):
    for name in ("C", "B", "N"):
        tiny.add_task(name)
    tiny.add_task("CB", parts=["C", "B"])
    with pytest.raises(InvalidInputError, match=r"single-degradation tasks.*got compound \['CB'\]"):
        tiny.add_task("CBN", parts=["CB", "N"])


@pytest.mark.parametrize("parts", [["C"], ["C", "C"], []])
def test_compound_needs_two_distinct_parts(tiny, parts):
    tiny.add_task("C")
    with pytest.raises(InvalidInputError, match="at least two distinct tasks from"):
        tiny.add_task("X", parts=parts)


def test_compound_parts_as_one_string(tiny):
    with pytest.raises(TypeError, match=r"`parts` must be a list or tuple.*got 'CB'"):
        tiny.add_task("CB", parts="CB")


@pytest.mark.parametrize("name", ["", "C.B", "C B", 3])
def test_bad_task_name(tiny, name):
    with pytest.raises(InvalidInputError, match="letters, digits and underscores; got"):
        tiny.add_task(name)


def test_reserved_task_name(tiny):
    with pytest.raises(InvalidInputError, match="'keys' is reserved"):
        tiny.add_task("keys")


def test_unknown_preset():
    with pytest.raises(InvalidInputError, match=r"one of \['paper', 'tiny'\]; got 'huge'"):
        ECMRNet.from_preset("huge")
    with pytest.raises(InvalidInputError, match="got 'huge'"):
        Backbone("huge")


def test_config_width_not_divisible_by_groups():
    with pytest.raises(InvalidInputError, match=r"`widths\[1\]` \(e2\).*got 30 channels and 8"):
        BackboneConfig(8, (8, 30, 128, 128, 32, 8), (4, 8, 32, 32, 8, 4), (1,) * 6)


def test_config_wrong_length():
    with pytest.raises(InvalidInputError, match=r"`blocks` must be 6 positive ints.*got \(1, 1\)"):
        BackboneConfig(8, (8,) * 6, (4,) * 6, (1, 1))


def test_gresblock_groups_must_divide_channels():
    with pytest.raises(InvalidInputError, match="divisible by `groups`; got 10 and 4"):
        GResBlock(10, groups=4)


def test_stale_optimizer_after_add_task(tiny):
    tiny.add_task("C")
    opt = make_optimizer(tiny)
    tiny.add_task("B")
    with pytest.raises(TaskStateError, match="must hold exactly the .* make_optimizer"):
        train_step(tiny, opt, X, X, task="B")


def test_training_a_frozen_task(tiny):
    tiny.add_task("C")
    tiny.add_task("B")
    opt = make_optimizer(tiny)
    with pytest.raises(TaskStateError, match=r"only 'B' trains now.*got `task`='C'"):
        train_step(tiny, opt, X, X, task="C")


def test_training_pairs_of_different_shapes(tiny):
    opt = make_optimizer(tiny)
    message = r"shape of `degraded` \(1, 1, 8, 8\); got \(1, 1, 8, 9\)"
    with pytest.raises(InvalidInputError, match=message):
        train_step(tiny, opt, X, images(1, 1, 8, 9))


def test_optimizer_without_trainable_parameters():
    net = Backbone("tiny").requires_grad_(False)
    with pytest.raises(TaskStateError, match="Backbone has no trainable parameter"):
        make_optimizer(net)


def test_loading_a_checkpoint_of_another_config(tiny):
    paper_state = ECMRNet.from_preset("tiny").state_dict()
    paper_state["_extra_state"]["config"]["blocks"] = [2] * 6
    with pytest.raises(InvalidInputError, match="config .* differs from this model's"):
        tiny.load_state_dict(paper_state)


def test_from_state_dict_without_extra_state(tiny):
    message = "'_extra_state' entry; got OrderedDict without one"
    with pytest.raises(InvalidInputError, match=message):
        ECMRNet.from_state_dict(tiny.backbone.state_dict())


@pytest.mark.parametrize("shape", [(1, 1, 8), (1, 1, 0, 8), "1x1x8x8", (1, 1, 8.0, 8)])
def test_complexity_bad_input_shape(tiny, shape):
    with pytest.raises(InvalidInputError, match="`input_shape` must be 4 positive ints"):
        complexity(tiny, shape)


def test_complexity_wrong_channels(tiny):
    with pytest.raises(InvalidInputError, match="must have 1 channel"):
        complexity(tiny, (1, 2, 8, 8))


def test_every_exception_lives_in_one_module_and_is_exported():
    """No exception class is defined outside sepkit_torch/_errors.py; each one is exported
    from the package and named there in tracebacks."""
    import ast
    import inspect
    from pathlib import Path

    import sepkit_torch
    from sepkit_torch import _errors

    root = Path(sepkit_torch.__file__).parent
    elsewhere = [
        f"{path.relative_to(root)}:{node.lineno} {node.name}"
        for path in root.rglob("*.py")
        if path.name != "_errors.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and any(getattr(b, "id", getattr(b, "attr", "")).endswith("Error") for b in node.bases)
    ]
    assert not elsewhere
    classes = [c for _, c in inspect.getmembers(_errors, inspect.isclass)]
    assert len(classes) == 11
    for cls in classes:
        assert issubclass(cls, sepkit_torch.SepkitTorchError)
        assert getattr(sepkit_torch, cls.__name__) is cls and cls.__name__ in sepkit_torch.__all__
        assert cls.__module__ == "sepkit_torch"
