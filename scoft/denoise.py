"""The short differentiable denoising chain: from the noised latent z_t to an image x_hat.

``chain_length`` timesteps spaced from t down to 0 (as the authors' code), with classifier-free guidance (the empty
prompt as null). Updates: ``ddpm`` (the authors' ``DDPMScheduler.step``: the stochastic posterior step, noise added
for t > 0, drawn from a generator seeded per chain step) or deterministic ``ddim``.

The UNet keeps its graph at one step only (``first``, ``random`` or ``last``), and there only for the conditional
prediction: the unconditional one is always computed under ``torch.no_grad`` (as the authors' code). The other steps
run under ``torch.no_grad`` (conditional and unconditional batched in one call, in half precision on CUDA), while the
latent updates stay differentiable, so the gradient reaches the recorded step through the sampler's linear path. The
frozen VAE then decodes z_0.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Literal

import torch
from torch import Tensor, nn

from scoft.seeds import mix_seed

GradStep = Literal["first", "random", "last"] | int
ChainSampler = Literal["ddpm", "ddim"]


def chain_timesteps(t: Tensor, chain_length: int) -> Tensor:
    """B x L integer timesteps, row b going from ``t[b]`` down to 0 in ``chain_length`` evenly spaced steps."""
    if chain_length < 1:
        raise ValueError("chain_length must be at least 1")
    if chain_length == 1:
        return t.long()[:, None]
    frac = torch.arange(chain_length - 1, -1, -1, device=t.device, dtype=torch.float64) / (chain_length - 1)
    return torch.round(t.double()[:, None] * frac).long()


def resolve_grad_step(grad_step: GradStep, chain_length: int, generator: torch.Generator | None = None) -> int:
    """Index of the chain step whose UNet call keeps its graph."""
    if isinstance(grad_step, int):
        if not 0 <= grad_step < chain_length:
            raise ValueError(f"grad step {grad_step} outside the chain of {chain_length}")
        return grad_step
    if grad_step == "first":
        return 0
    if grad_step == "last":
        return chain_length - 1
    if grad_step == "random":
        return int(torch.randint(0, chain_length, (1,), generator=generator).item())
    raise ValueError(f"unknown grad_step {grad_step!r} (choose first, random or last)")


def _expand(a: Tensor, like: Tensor) -> Tensor:
    return a.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def ddim_step(z: Tensor, model_out: Tensor, a_t: Tensor, a_next: Tensor, prediction_type: str = "epsilon") -> Tensor:
    """Deterministic DDIM update from cumulative alpha ``a_t`` to ``a_next`` (per row; 1 means clean)."""
    a_t, a_next = _expand(a_t, z), _expand(a_next, z)
    model_out = model_out.to(z.dtype)
    if prediction_type == "epsilon":
        eps = model_out
        x0 = (z - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    elif prediction_type == "v_prediction":
        x0 = a_t.sqrt() * z - (1 - a_t).sqrt() * model_out
        eps = a_t.sqrt() * model_out + (1 - a_t).sqrt() * z
    else:
        raise ValueError(f"unsupported prediction type {prediction_type!r}")
    return a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps


def _predict_x0(z: Tensor, model_out: Tensor, a_t: Tensor, prediction_type: str) -> Tensor:
    if prediction_type == "epsilon":
        return (z - (1 - a_t).sqrt() * model_out) / a_t.sqrt()
    if prediction_type == "v_prediction":
        return a_t.sqrt() * z - (1 - a_t).sqrt() * model_out
    raise ValueError(f"unsupported prediction type {prediction_type!r}")


def ddpm_step(
    z: Tensor,
    model_out: Tensor,
    a_t: Tensor,
    a_prev: Tensor,
    noise: Tensor | None,
    prediction_type: str = "epsilon",
    clip_sample_range: float | None = None,
) -> Tensor:
    """``DDPMScheduler.step`` from cumulative alpha ``a_t`` to ``a_prev`` (per row; 1 past the last step), with the
    ``fixed_small`` variance: the posterior mean plus ``sqrt(variance) * noise`` where ``noise`` is given (the
    scheduler adds it for t > 0). ``clip_sample_range`` clamps the predicted x_0 as the scheduler's ``clip_sample``."""
    a_t, a_prev = _expand(a_t, z), _expand(a_prev, z)
    model_out = model_out.to(z.dtype)
    beta_prod_t = 1 - a_t
    current_alpha = a_t / a_prev
    current_beta = 1 - current_alpha
    x0 = _predict_x0(z, model_out, a_t, prediction_type)
    if clip_sample_range is not None:
        x0 = x0.clamp(-clip_sample_range, clip_sample_range)
    mean = (a_prev.sqrt() * current_beta / beta_prod_t) * x0 + (current_alpha.sqrt() * (1 - a_prev) / beta_prod_t) * z
    if noise is None:
        return mean
    variance = ((1 - a_prev) / beta_prod_t * current_beta).clamp(min=1e-20)
    return mean + variance.sqrt() * noise.to(z.dtype)


def ddpm_clip_range(scheduler_config: Any) -> float | None:
    """The ``clip_sample_range`` a ``DDPMScheduler`` config asks for (``None`` without ``clip_sample``); refuses the
    variance types ``ddpm_step`` does not implement and thresholding."""
    variance = getattr(scheduler_config, "variance_type", "fixed_small")
    if variance not in ("fixed_small", "fixed_small_log"):
        raise ValueError(f"chain_sampler = 'ddpm' supports variance_type fixed_small, not {variance!r}")
    if getattr(scheduler_config, "thresholding", False):
        raise ValueError("chain_sampler = 'ddpm' does not support a scheduler with thresholding")
    if getattr(scheduler_config, "clip_sample", False):
        return float(getattr(scheduler_config, "clip_sample_range", 1.0))
    return None


def step_noise(seed: int, step: int, like: Tensor) -> Tensor:
    """Noise of chain step ``step``: a CPU generator seeded by (``seed``, ``step``), moved to ``like``'s device."""
    generator = torch.Generator().manual_seed(mix_seed(seed, step, 0xDD9))
    return torch.randn(like.shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)


def guided_prediction(
    unet: nn.Module, z: Tensor, t: Tensor, cond: Tensor, uncond: Tensor, guidance_scale: float
) -> Tensor:
    """Classifier-free guided prediction, conditional and unconditional in one batched UNet call."""
    out = unet(torch.cat([z, z]), torch.cat([t, t]), encoder_hidden_states=torch.cat([uncond, cond])).sample
    u, c = out.chunk(2)
    return u + guidance_scale * (c - u)


def recorded_guided_prediction(
    unet: nn.Module, z: Tensor, t: Tensor, cond: Tensor, uncond: Tensor, guidance_scale: float
) -> Tensor:
    """Guided prediction at the recorded step: the unconditional prediction without gradient, the conditional one
    with it (two UNet calls)."""
    with torch.no_grad():
        u = unet(z.detach(), t, encoder_hidden_states=uncond).sample
    c = unet(z, t, encoder_hidden_states=cond).sample
    return u + guidance_scale * (c - u)


def denoise_chain(
    unet: nn.Module,
    alphas_cumprod: Tensor,
    z_t: Tensor,
    t: Tensor,
    cond: Tensor,
    uncond: Tensor,
    *,
    chain_length: int = 20,
    guidance_scale: float = 4.5,
    grad_step: GradStep = "first",
    prediction_type: str = "epsilon",
    first_preds: tuple[Tensor, Tensor] | None = None,
    half_precision: bool = True,
    generator: torch.Generator | None = None,
    sampler: ChainSampler = "ddpm",
    noise_seed: int = 0,
    clip_sample_range: float | None = None,
) -> Tensor:
    """Denoise ``z_t`` (at per-row timesteps ``t``) to an estimate of z_0 with gradient through one UNet step.

    ``first_preds`` = (conditional prediction, unconditional prediction) at ``t`` already computed by the training
    pass: step 0 reuses them instead of calling the UNet (the conditional one keeps its graph when step 0 is the
    recorded step, as in the authors' code). ``half_precision`` runs the no-grad steps under fp16 autocast on CUDA.
    ``generator`` draws the ``random`` recorded step; ``noise_seed`` seeds the ``ddpm`` noise of each chain step
    (step k's noise depends only on (``noise_seed``, k)).
    """
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"unknown chain sampler {sampler!r} (choose 'ddpm' or 'ddim')")
    if t.shape[0] != z_t.shape[0]:
        raise ValueError("t must have one timestep per latent")
    steps = chain_timesteps(t.to(z_t.device), chain_length)
    grad_index = resolve_grad_step(grad_step, chain_length, generator)
    alphas = alphas_cumprod.to(z_t.device, torch.float32)
    one = torch.ones(z_t.shape[0], device=z_t.device)
    use_half = half_precision and z_t.is_cuda
    z = z_t
    for k in range(chain_length):
        tk = steps[:, k]
        a_t = alphas[tk]
        a_next = alphas[steps[:, k + 1]] if k + 1 < chain_length else one
        if k == 0 and first_preds is not None:
            cond_pred, uncond_pred = first_preds
            if grad_index != 0:
                cond_pred = cond_pred.detach()
            pred = uncond_pred.detach() + guidance_scale * (cond_pred - uncond_pred.detach())
        elif k == grad_index:
            pred = recorded_guided_prediction(unet, z, tk, cond, uncond, guidance_scale)
        else:
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16) if use_half else nullcontext():
                pred = guided_prediction(unet, z.detach(), tk, cond, uncond, guidance_scale).float()
        if sampler == "ddim":
            z = ddim_step(z, pred, a_t, a_next, prediction_type)
        else:
            # as DDPMScheduler.step: noise only where t > 0 (the last step is always at t = 0)
            noise = step_noise(noise_seed, k, z) * _expand((tk > 0).float(), z) if k + 1 < chain_length else None
            z = ddpm_step(z, pred, a_t, a_next, noise, prediction_type, clip_sample_range)
    return z


def decode_latents(vae: nn.Module, latents: Tensor) -> Tensor:
    """Frozen VAE decode of SD latents to images in (about) [-1, 1]; differentiable with respect to ``latents``."""
    scale = getattr(vae.config, "scaling_factor", 0.18215)
    dtype = next(vae.parameters()).dtype
    return vae.decode(latents.to(dtype) / scale).sample


def denoise_to_image(
    unet: nn.Module,
    vae: nn.Module,
    alphas_cumprod: Tensor,
    z_t: Tensor,
    t: Tensor,
    cond: Tensor,
    uncond: Tensor,
    **chain_kwargs: object,
) -> Tensor:
    """``denoise_chain`` followed by the frozen VAE decode; returns x_hat (B x 3 x H x W)."""
    z0 = denoise_chain(unet, alphas_cumprod, z_t, t, cond, uncond, **chain_kwargs)  # type: ignore[arg-type]
    return decode_latents(vae, z0)
