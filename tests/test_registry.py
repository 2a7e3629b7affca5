"""Every member of the registry goes through every consumer that builds a table from it, so a
member missing anywhere fails here by name: the compiled kernels' plan, relukit.nn's modules,
functional forms and operators, convert/revert, the study's models and the benchmark's peers.
(The monitor's firing rule is checked by tests/diagnostics.)"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import relukit.nn as rn
from relukit import bench
from relukit.bench import peer_timers
from relukit.family import MEMBERS, lookup
from relukit.nn import functional as rf
from relukit.nn import kernel
from relukit.nn.convert import TO_RELUKIT
from relukit.study.models import activation_module

IDS = [spec.name for spec in MEMBERS]


def defaults(spec):
    return spec.bind({})


@pytest.mark.parametrize("spec", MEMBERS, ids=IDS)
def test_kernel_formula_names_a_compiled_member(spec):
    if spec.kernel is None:
        assert not spec.elementwise, f"{spec.name}: elementwise but no kernel formula"
        return
    formula, args = spec.kernel(defaults(spec))
    assert isinstance(formula, str) and all(isinstance(a, float | int) for a in args)
    if not kernel.kernels_available():
        return
    from relukit.kernels import cpu

    for work in (np.dtype(np.float32), np.dtype(np.float64)):
        plan = cpu.plan(spec, "forward", defaults(spec), work)
        assert plan is not None, f"{spec.name}: formula {formula!r} has no kernel plan"


@pytest.mark.parametrize("spec", MEMBERS, ids=IDS)
def test_module_and_functional_form(spec):
    if spec.module is None:
        assert spec.name not in rn.MODULES
        assert not spec.in_family, f"{spec.name}: a member of the family needs a module"
    else:
        cls = rn.MODULES[spec.name]
        assert cls.__name__ == spec.module and cls.relukit_member == spec.name
        assert getattr(rn, spec.module) is cls and spec.module in rn.__all__  # relukit.nn.<it>
    if spec.torch_name is not None:
        assert hasattr(F, spec.torch_name), f"{spec.name}: torch has no F.{spec.torch_name}"
        ours = getattr(rf, spec.torch_name)
        try:
            theirs = inspect.signature(getattr(F, spec.torch_name)).parameters
        except ValueError:  # a builtin without a signature (gelu, softplus)
            return
        assert list(inspect.signature(ours).parameters)[: len(theirs)] == list(theirs)


@pytest.mark.parametrize("spec", MEMBERS, ids=IDS)
def test_convert_and_revert(spec):
    if spec.torch_module is None or spec.module is None:
        return
    theirs = getattr(nn, spec.torch_module)
    assert TO_RELUKIT[theirs][0] == spec.name
    model = nn.Sequential(theirs())
    model, report = rn.convert(model)
    assert type(model[0]) is rn.MODULES[spec.name], report
    model, _ = rn.revert(model)
    assert type(model[0]) is theirs


@pytest.mark.parametrize("spec", MEMBERS, ids=IDS)
def test_study_builds_a_network_with_it(spec):
    module = activation_module(spec.name)
    expected = rn.MODULES.get(spec.name) or getattr(nn, spec.torch_module)
    assert type(module) is expected


@pytest.mark.parametrize(
    "spec", [s for s in MEMBERS if s.mask_code is not None], ids=lambda s: s.name
)
def test_mask_members_run_the_mask_op_with_pytorchs_gradient(spec):
    if spec.name in ("prelu",):  # its own op: weights are tensors (tests/nn/test_autograd.py)
        return
    x = torch.linspace(-8, 8, 101, dtype=torch.float64, requires_grad=True)
    module = rn.MODULES[spec.name]().eval()
    with_mask = module(x)
    assert with_mask.grad_fn is not None
    (ours,) = torch.autograd.grad(with_mask.sum(), x)
    if spec.torch_module is not None:
        reference = getattr(nn, spec.torch_module)().eval()(x)
        (theirs,) = torch.autograd.grad(reference.sum(), x)
        assert torch.equal(with_mask, reference) and torch.equal(ours, theirs)


@pytest.mark.parametrize("name", bench.MEMBERS)
def test_the_benchmark_times_the_registrys_torch_peer(name):
    torch_name = lookup(name).torch_name
    peers = peer_timers(name, "forward", bench.Arrays("float32", 64))
    assert f"F.{torch_name}" in peers
    peers[f"F.{torch_name}"]()


def test_every_member_is_walked():
    assert [lookup(name).name for name in IDS] == IDS
