"""The training sampler: the chain differentiates w.r.t. x alone, so the weights' grad flags
are off while it runs and it returns exactly what the engine returns with them on."""

import torch

from conceptebm.concepts import Concept
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.infer import langevin
from conceptebm.train.sampling import conditioned_energy, sample_images


def test_sampler_without_weight_grads_is_bit_identical_and_restores_the_flags():
    torch.manual_seed(0)
    net = ConvEnergyNet(Concept.continuous("position", dim=2), image_size=16, width=4,
                        embed_dim=8)
    next(net.parameters()).requires_grad_(False)  # a frozen weight stays frozen
    flags = [p.requires_grad for p in net.parameters()]
    x0, c = torch.rand(5, 3, 16, 16), torch.rand(5, 2) * 2 - 1
    seen = []
    net.register_forward_hook(
        lambda mod, args, out: seen.append(any(p.requires_grad for p in mod.parameters())))
    got = sample_images(net, c, num_steps=4, x0=x0, generator=torch.Generator().manual_seed(1))
    assert seen and not any(seen)  # no weight required grad during the chain
    assert [p.requires_grad for p in net.parameters()] == flags
    want = langevin(conditioned_energy(net, c), x0, num_steps=4, step_size=100.0,
                    noise_scale=0.005, bounds=(0.0, 1.0),
                    generator=torch.Generator().manual_seed(1))
    assert seen[-1]  # the reference ran with the weights' flags on
    assert torch.equal(got, want)
