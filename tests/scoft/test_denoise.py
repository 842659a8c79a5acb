"""The differentiable denoising chain: timesteps, DDPM and DDIM updates, gradient through one step only."""

from pathlib import Path

import pytest
import torch

from scoft.denoise import (
    chain_timesteps,
    ddim_step,
    ddpm_step,
    decode_latents,
    denoise_chain,
    denoise_to_image,
    resolve_grad_step,
    step_noise,
)
from scoft.lora import add_lora


def test_chain_timesteps_go_from_t_to_zero() -> None:
    steps = chain_timesteps(torch.tensor([999, 19, 3]), 20)
    assert steps.shape == (3, 20)
    assert steps[:, 0].tolist() == [999, 19, 3]
    assert steps[:, -1].tolist() == [0, 0, 0]
    assert (steps[:, 1:] <= steps[:, :-1]).all()
    assert steps[1].tolist() == list(range(19, -1, -1))
    assert chain_timesteps(torch.tensor([7]), 1).tolist() == [[7]]


def test_resolve_grad_step() -> None:
    assert resolve_grad_step("first", 20) == 0
    assert resolve_grad_step("last", 20) == 19
    picks = {resolve_grad_step("random", 5, torch.Generator().manual_seed(s)) for s in range(50)}
    assert picks == set(range(5))
    with pytest.raises(ValueError):
        resolve_grad_step(5, 5)
    with pytest.raises(ValueError, match="grad_step"):
        resolve_grad_step("middle", 5)  # type: ignore[arg-type]


def test_ddim_step_recovers_the_clean_latent_with_the_true_noise() -> None:
    x0, eps = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    a = torch.tensor([0.3, 0.9])
    z = a.sqrt().view(-1, 1, 1, 1) * x0 + (1 - a).sqrt().view(-1, 1, 1, 1) * eps
    assert torch.allclose(ddim_step(z, eps, a, torch.ones(2)), x0, atol=1e-5)
    # same alpha: the update is the identity
    assert torch.allclose(ddim_step(z, eps, a, a), z, atol=1e-6)
    # v-prediction: v = sqrt(a) eps - sqrt(1 - a) x0
    v = a.sqrt().view(-1, 1, 1, 1) * eps - (1 - a).sqrt().view(-1, 1, 1, 1) * x0
    assert torch.allclose(ddim_step(z, v, a, torch.ones(2), "v_prediction"), x0, atol=1e-5)


@pytest.fixture(scope="module")
def parts(tiny_models: dict[str, Path]):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    sd = tiny_models["sd"]
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_pretrained(sd, subfolder="unet")
    add_lora(unet, rank=4, alpha=4)
    with torch.no_grad():  # non-zero LoRA B so the adapter changes the output
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    vae = AutoencoderKL.from_pretrained(sd, subfolder="vae").requires_grad_(False)
    alphas = DDPMScheduler.from_pretrained(sd, subfolder="scheduler").alphas_cumprod
    return unet, vae, alphas


class CallRecorder:
    """Wraps a UNet and records, per call, whether autograd was recording."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet = unet
        self.grad_calls: list[bool] = []

    def __call__(self, *args, **kwargs):
        self.grad_calls.append(torch.is_grad_enabled())
        return self.unet(*args, **kwargs)


def _inputs(bsz: int = 2):
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(bsz, 4, 8, 8, generator=gen)
    cond = torch.randn(bsz, 77, 32, generator=gen)
    uncond = torch.randn(bsz, 77, 32, generator=gen)
    return z, torch.tensor([600, 250][:bsz]), cond, uncond


@pytest.mark.parametrize("grad_step", ["first", "last", 2])
def test_gradient_flows_through_the_recorded_step_only(parts, grad_step) -> None:
    unet, vae, alphas = parts
    z, t, cond, uncond = _inputs()
    rec = CallRecorder(unet)
    unet.zero_grad(set_to_none=True)
    x_hat = denoise_to_image(rec, vae, alphas, z, t, cond, uncond, chain_length=5, grad_step=grad_step)
    assert x_hat.shape == (2, 3, 64, 64)
    index = {"first": 0, "last": 4}.get(grad_step, grad_step)
    # one batched no-grad call per step; at the recorded step an unconditional no-grad call, then the conditional one
    assert rec.grad_calls == [c for i in range(5) for c in ([False, True] if i == index else [False])]
    x_hat.square().mean().backward()
    lora = [p for n, p in unet.named_parameters() if "lora_" in n]
    frozen = [p for n, p in unet.named_parameters() if "lora_" not in n]
    assert all(p.grad is not None for p in lora)
    assert sum(p.grad.abs().sum() for p in lora) > 0
    assert all(p.grad is None for p in frozen)
    assert all(p.grad is None for p in vae.parameters())


def test_recorded_step_does_not_change_the_forward_value(parts) -> None:
    unet, vae, alphas = parts
    z, t, cond, uncond = _inputs()
    outs = [
        denoise_chain(unet, alphas, z, t, cond, uncond, chain_length=4, grad_step=g).detach()
        for g in ("first", "last", 1)
    ]
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    assert torch.allclose(outs[0], outs[2], atol=1e-5)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_gradient_equals_the_one_step_surrogate(parts, sampler) -> None:
    """With every other step's prediction held constant, and the unconditional prediction of the recorded step too,
    the chain's gradient is that of the recorded step's conditional prediction."""
    unet, vae, alphas = parts
    z, t, cond, uncond = _inputs(1)
    lora = [p for n, p in unet.named_parameters() if "lora_" in n]
    kwargs = {"chain_length": 3, "guidance_scale": 2.0, "grad_step": 1, "sampler": sampler, "noise_seed": 5}

    unet.zero_grad(set_to_none=True)
    denoise_chain(unet, alphas, z, t, cond, uncond, **kwargs).sum().backward()
    chain_grads = [p.grad.clone() for p in lora]

    # surrogate: steps 0 and 2 without graph, step 1 with graph on the conditional call only, the same arithmetic
    steps = chain_timesteps(t, 3)
    a = alphas[steps[0]]
    zk = z
    for k in range(3):
        a_next = a[k + 1 : k + 2] if k < 2 else torch.ones(1)
        tk = steps[:, k]
        with torch.no_grad():
            u = unet(zk, tk, encoder_hidden_states=uncond).sample
        with torch.set_grad_enabled(k == 1):
            c = unet(zk, tk, encoder_hidden_states=cond).sample
        pred = u + 2.0 * (c - u)
        if sampler == "ddim":
            zk = ddim_step(zk, pred, a[k : k + 1], a_next)
        else:
            noise = step_noise(5, k, zk) if k < 2 else None
            zk = ddpm_step(zk, pred, a[k : k + 1], a_next, noise)
    unet.zero_grad(set_to_none=True)
    zk.sum().backward()
    for got, want in zip(chain_grads, (p.grad for p in lora), strict=True):
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("grad_step", ["random", "last", "first"])
def test_the_unconditional_prediction_carries_no_gradient(parts, grad_step) -> None:
    unet, vae, alphas = parts
    z, t, cond, uncond = _inputs()
    cond = cond.clone().requires_grad_(True)
    uncond = uncond.clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(3)
    out = denoise_chain(unet, alphas, z, t, cond, uncond, chain_length=4, grad_step=grad_step, generator=gen)
    out.square().sum().backward()
    assert cond.grad is not None and cond.grad.abs().sum() > 0
    assert uncond.grad is None


def test_first_step_reuses_the_training_predictions(parts) -> None:
    unet, vae, alphas = parts
    z, t, cond, uncond = _inputs()
    with torch.no_grad():
        both = unet(torch.cat([z, z]), torch.cat([t, t]), encoder_hidden_states=torch.cat([uncond, cond])).sample
    pred_uncond, pred_cond = both.chunk(2)
    rec = CallRecorder(unet)
    reused = denoise_chain(rec, alphas, z, t, cond, uncond, chain_length=4, first_preds=(pred_cond, pred_uncond))
    assert len(rec.grad_calls) == 3
    plain = denoise_chain(unet, alphas, z, t, cond, uncond, chain_length=4)
    assert torch.allclose(reused, plain, atol=1e-5)


def test_decode_latents_uses_the_vae_scaling_factor(parts) -> None:
    _, vae, _ = parts
    z = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        expected = vae.decode(z / vae.config.scaling_factor).sample
        assert torch.allclose(decode_latents(vae, z), expected)


def _scheduler(tiny_models):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_pretrained(tiny_models["sd"], subfolder="scheduler")


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddpm_step_is_the_schedulers_step_with_its_noise(tiny_models, prediction_type) -> None:
    sched = _scheduler(tiny_models)
    sched.register_to_config(prediction_type=prediction_type)
    steps = chain_timesteps(torch.tensor([731]), 6)[0].tolist()
    sched.set_timesteps(timesteps=steps)
    a = sched.alphas_cumprod
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(1, 4, 8, 8, generator=gen)
    for k, tk in enumerate(steps):
        out = torch.randn(1, 4, 8, 8, generator=gen)
        a_prev = a[steps[k + 1]] if k + 1 < len(steps) else torch.tensor(1.0)
        seed = 100 + k
        want = sched.step(out, tk, z, generator=torch.Generator().manual_seed(seed)).prev_sample
        noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed)) if tk > 0 else None
        got = ddpm_step(z, out, a[tk : tk + 1], a_prev.view(1), noise, prediction_type)
        assert torch.allclose(got, want, atol=1e-5), (k, tk)
        z = want


def test_recorded_step_dz_deps_is_the_ddpm_coefficient(tiny_models) -> None:
    """d z_prev / d eps of the recorded step equals DDPMScheduler's (its step is linear in eps): about 2x DDIM's."""
    sched = _scheduler(tiny_models)
    steps = chain_timesteps(torch.tensor([600]), 20)[0].tolist()
    sched.set_timesteps(timesteps=steps)
    a = sched.alphas_cumprod
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    eps = torch.zeros_like(z, requires_grad=True)
    a_t, a_prev = a[steps[0] : steps[0] + 1], a[steps[1] : steps[1] + 1]
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    ddpm_step(z, eps, a_t, a_prev, noise).sum().backward()
    zero, one = (
        sched.step(torch.full_like(z, v), steps[0], z, generator=torch.Generator().manual_seed(1)) for v in (0, 1)
    )
    coefficient = one.prev_sample - zero.prev_sample
    assert torch.allclose(eps.grad, coefficient, atol=1e-5)
    assert coefficient.std() < 1e-6  # one scalar
    by_hand = -(a_prev.sqrt() * (1 - a_t / a_prev) / (1 - a_t)) * (1 - a_t).sqrt() / a_t.sqrt()
    assert torch.allclose(coefficient.flatten()[0], by_hand[0], rtol=1e-4)
    eps_ddim = torch.zeros_like(z, requires_grad=True)
    ddim_step(z, eps_ddim, a_t, a_prev).sum().backward()
    ratio = (eps_ddim.grad / eps.grad).mean().item()
    assert 0.3 < ratio < 0.8  # DDIM's recorded step carries about half the gradient


def test_ddpm_chain_noise_is_seeded_per_step(parts) -> None:
    unet, _, alphas = parts
    z, t, cond, uncond = _inputs()
    with torch.no_grad():
        run = [denoise_chain(unet, alphas, z, t, cond, uncond, chain_length=3, noise_seed=s) for s in (7, 7, 8)]
        ddim = [
            denoise_chain(unet, alphas, z, t, cond, uncond, chain_length=3, sampler="ddim", noise_seed=s)
            for s in (7, 8)
        ]
    assert torch.equal(run[0], run[1])
    assert not torch.allclose(run[0], run[2])
    assert torch.equal(ddim[0], ddim[1])
    assert torch.equal(step_noise(7, 1, z), step_noise(7, 1, z))
    assert not torch.equal(step_noise(7, 1, z), step_noise(7, 2, z))
    with pytest.raises(ValueError, match="sampler"):
        denoise_chain(unet, alphas, z, t, cond, uncond, chain_length=2, sampler="euler")  # type: ignore[arg-type]


def test_ddpm_adds_no_noise_at_t_zero(parts) -> None:
    """A chain from t = 2 has repeated zero timesteps: those steps are exact identities (the scheduler's t > 0 rule)."""
    unet, _, alphas = parts
    z, _, cond, uncond = _inputs(1)
    t = torch.tensor([2])
    with torch.no_grad():
        outs = [denoise_chain(unet, alphas, z, t, cond, uncond, chain_length=6, noise_seed=s) for s in (1, 2)]
    # steps 2 -> 2 -> 1 -> 1 -> 0 -> 0 -> clean: noise enters only at the step from 2 to 1 (and 1 to 0)
    assert not torch.allclose(outs[0], outs[1])
    zero_only = [
        denoise_chain(unet, alphas, z, torch.tensor([0]), cond, uncond, chain_length=4, noise_seed=s).detach()
        for s in (1, 2)
    ]
    assert torch.equal(zero_only[0], zero_only[1])
