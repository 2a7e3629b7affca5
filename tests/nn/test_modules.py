"""relukit.nn's modules behave as torch.nn's: names, signatures, defaults, repr, state dicts,
modes, moves; their values are checked by the registry."""

from __future__ import annotations

import copy
import inspect
import math

import pytest
import torch
from torch import nn

import relukit
import relukit.nn as rn
from relukit.family import ParameterError, lookup
from relukit.nn import functional as rf

COUNTERPARTS = [
    (rn.ReLU, nn.ReLU),
    (rn.LeakyReLU, nn.LeakyReLU),
    (rn.PReLU, nn.PReLU),
    (rn.RReLU, nn.RReLU),
    (rn.ELU, nn.ELU),
    (rn.SELU, nn.SELU),
    (rn.CELU, nn.CELU),
    (rn.GELU, nn.GELU),
    (rn.ReLU6, nn.ReLU6),
    (rn.Hardtanh, nn.Hardtanh),
    (rn.Softplus, nn.Softplus),
    (rn.SiLU, nn.SiLU),
    (rn.Mish, nn.Mish),
]


@pytest.mark.parametrize(("ours", "theirs"), COUNTERPARTS, ids=lambda c: c.__name__)
def test_same_name_signature_defaults_and_class(ours, theirs):
    assert ours.__name__ == theirs.__name__
    assert issubclass(ours, theirs)
    mine = inspect.signature(ours).parameters
    positional = {k: v for k, v in mine.items() if v.kind is not v.KEYWORD_ONLY}
    assert list(positional) == list(inspect.signature(theirs).parameters)
    for name, parameter in inspect.signature(theirs).parameters.items():
        assert positional[name].default == parameter.default


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (rn.ReLU(inplace=True), nn.ReLU(inplace=True)),
        (rn.LeakyReLU(0.2, True), nn.LeakyReLU(0.2, True)),
        (rn.PReLU(3, 0.1), nn.PReLU(3, 0.1)),
        (rn.RReLU(0.1, 0.3), nn.RReLU(0.1, 0.3)),
        (rn.ELU(0.5), nn.ELU(0.5)),
        (rn.CELU(2.0, True), nn.CELU(2.0, True)),
        (rn.GELU("tanh"), nn.GELU("tanh")),
        (rn.ReLU6(True), nn.ReLU6(True)),
        (rn.Hardtanh(-2.0, 3.0), nn.Hardtanh(-2.0, 3.0)),
        (rn.Softplus(2.0, 10.0), nn.Softplus(2.0, 10.0)),
        (rn.SiLU(True), nn.SiLU(True)),
    ],
    ids=lambda m: type(m).__name__,
)
def test_repr_is_torchs(ours, theirs):
    assert repr(ours) == repr(theirs)


def test_relukit_member_names_every_member_of_the_family():
    assert set(rn.MODULES) == {spec.name for spec in relukit.family(include_baselines=False)}
    for name, cls in rn.MODULES.items():
        assert cls.relukit_member == name == lookup(name).name


def test_own_modules_repr():
    assert repr(rn.CReLU(1)) == "CReLU(dim=1)"
    assert repr(rn.Maxout(3, 1)) == "Maxout(pieces=3, dim=1)"
    assert repr(rn.SquaredReLU()) == "SquaredReLU()"
    assert repr(rn.GeneralReLU(0.1, 6.0)) == (
        "GeneralReLU(negative_slope=0.1, max_value=6.0, threshold=0.0)"
    )


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: rn.LeakyReLU(math.nan), ["LeakyReLU", "negative_slope", "nan"]),
        (lambda: rn.RReLU(0.5, 0.1), ["RReLU", "lower=0.5", "upper=0.1"]),
        (lambda: rn.RReLU(-0.1, 0.1), ["RReLU", "lower=-0.1"]),
        (lambda: rn.Hardtanh(1.0, -1.0), ["Hardtanh", "min_val=1.0", "max_val=-1.0"]),
        (lambda: rn.CELU(0.0), ["CELU", "alpha=0.0"]),
        (lambda: rn.Softplus(beta=0.0), ["Softplus", "beta=0.0"]),
        (lambda: rn.GELU("fast"), ["GELU", "approximate='fast'"]),
        (lambda: rn.PReLU(0), ["PReLU", "num_parameters=0"]),
        (lambda: rn.PReLU(2, math.inf), ["PReLU", "weight=inf"]),
        (lambda: rn.Maxout(0), ["Maxout", "pieces=0"]),
        (lambda: rn.GeneralReLU(max_value=-1.0), ["GeneralReLU", "max_value=-1.0"]),
        (lambda: rn.CReLU(1.5), ["CReLU", "dim=1.5"]),
        (lambda: rn.Maxout(2, "last"), ["Maxout", "dim='last'"]),
        (lambda: rf.leaky_relu(torch.ones(2), "x"), ["functional.leaky_relu", "negative_slope"]),
        (lambda: rf.maxout(torch.ones(2, 5), 2), ["maxout", "pieces=2", "length 5"]),
        (lambda: rf.crelu(torch.tensor(1.0)), ["crelu", "0-d"]),
        (lambda: rf.crelu(torch.ones(2), dim=3), ["crelu", "dim=3"]),
        (lambda: rf.prelu(torch.ones(2, 3), torch.ones(2)), ["prelu", "2 slopes", "3 channel"]),
    ],
)
def test_bad_values_raise_parameter_error_naming_the_culprit(build, words):
    with pytest.raises(ParameterError) as info:
        build()
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)


def test_prelu_state_dict_loads_across():
    theirs = nn.PReLU(4, 0.1)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([0.1, -0.2, 0.3, 0.4]))
    ours = rn.PReLU(4)
    ours.load_state_dict(theirs.state_dict())
    assert torch.equal(ours.weight, theirs.weight)
    back = nn.PReLU(4)
    back.load_state_dict(ours.state_dict())
    assert torch.equal(back.weight, theirs.weight)


def test_prelu_device_and_dtype_moves():
    m = rn.PReLU(3).to(torch.float64)
    assert m.weight.dtype == torch.float64
    y = m(torch.randn(2, 3, dtype=torch.float64, requires_grad=True))
    y.sum().backward()
    assert m.weight.grad.dtype == torch.float64
    assert rn.PReLU(3, device="meta").weight.device.type == "meta"
    assert rn.PReLU(3).to("meta").weight.device.type == "meta"


def test_rrelu_training_and_eval_modes():
    x = -torch.ones(1000)
    m = rn.RReLU(0.1, 0.3)
    torch.manual_seed(0)
    y_train = m.train()(x)
    slopes = -y_train
    assert ((slopes >= 0.1) & (slopes <= 0.3)).all() and slopes.unique().numel() > 100
    y_eval = m.eval()(x)
    assert torch.equal(y_eval, nn.RReLU(0.1, 0.3).eval()(x))
    assert torch.equal(y_eval, torch.full_like(x, -0.2))


def test_rrelu_generator_gives_reproducible_slopes():
    x = -torch.ones(100)
    first = rn.RReLU(generator=torch.Generator().manual_seed(5)).train()(x)
    second = rn.RReLU(generator=torch.Generator().manual_seed(5)).train()(x)
    assert torch.equal(first, second)


@pytest.mark.parametrize("member", sorted(rn.MODULES))
def test_every_module_deep_copies_and_runs_in_eval_and_train(member):
    module = rn.MODULES[member]()
    x = torch.randn(4, 6, requires_grad=True)
    for mode in (True, False):
        module.train(mode)
        y = copy.deepcopy(module)(x)
        y.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape
        x.grad = None


@pytest.mark.parametrize("member", ["relu", "leaky_relu", "relu6", "hardtanh", "general_relu"])
def test_functional_forms_equal_the_registry_in_float64(member):
    x = torch.linspace(-8, 8, 97, dtype=torch.float64)
    ours = getattr(rf, member)(x)
    assert torch.equal(ours, torch.from_numpy(relukit.get(member)(x.numpy())))
