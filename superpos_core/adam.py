"""Adam on one flat buffer: the update ``torch.optim.Adam`` makes, in seven whole-buffer operations a step.

The toy model (ten weights per instance) and the SAEs trained on its hidden layer are so small that a
step's cost is the number of PyTorch calls, not arithmetic. ``torch.optim.Adam`` makes about seven calls
per parameter tensor and keeps per-tensor bookkeeping; here every parameter is a view of one buffer, so a
step is seven calls whatever the number of tensors, and the caller writes its gradients straight into
the matching views of one gradient buffer (no autograd).

    adam = FlatAdam([W, b])      # W and b now live in adam.flat (their .data are views of it)
    gW, gb = adam.grads          # write the gradients here, then
    adam.step(lr)

The update is ``torch.optim.Adam``'s own with its defaults (no weight decay, no AMSGrad) — the same
operations in the same order, with the bias corrections computed in Python floats as it does on the
CPU — so the numbers agree with it bit for bit (``tests/superpos_core/test_adam.py`` checks).
"""

from __future__ import annotations

import torch


class FlatAdam:
    """Adam over tensors moved into one flat buffer.

    Args:
        params: the tensors to optimise (plain tensors or ``nn.Parameter``s, all on one device, float32).
            Their values are copied into ``flat`` and each one's ``.data`` becomes its view of it, so code
            that reads or writes them in place (a forward pass, resampling) sees and changes the buffer.
        betas, eps: Adam's, with ``torch.optim.Adam``'s defaults.
    """

    def __init__(self, params: list[torch.Tensor], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0  # updates made; Adam's bias corrections need it
        sizes = [p.numel() for p in self.params]
        self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])  # (P,)
        self.grad = torch.zeros_like(self.flat)  # (P,) the caller fills it before each step
        self.exp_avg = torch.zeros_like(self.flat)  # (P,) Adam's first moment
        self.exp_avg_sq = torch.zeros_like(self.flat)  # (P,) and second
        self._denom = torch.empty_like(self.flat)  # (P,) work space, reused every step
        # The constants as 0-dim float32 tensors: a Python number in a tensor operation is wrapped and cast to
        # float32 on every call, which costs as much as the operation itself on a buffer this small. The
        # cast gives the very float32 that torch.optim.Adam's own numbers become, so the results are the same.
        scalar = lambda value: torch.tensor(value, dtype=self.flat.dtype, device=self.flat.device)  # noqa: E731
        self._beta2, self._eps, self._bias_correction2_sqrt = scalar(self.beta2), scalar(eps), scalar(1.0)

        def views(buffer: torch.Tensor) -> list[torch.Tensor]:
            return [v.view(p.shape) for v, p in zip(buffer.split(sizes), self.params)]

        for p, view in zip(self.params, views(self.flat)):
            p.data = view
        self.grads = views(self.grad)
        # As torch.optim.Adam's ``state``: per parameter, its moments (views), for code that resets some rows.
        self.state = {
            p: {"exp_avg": m, "exp_avg_sq": v}
            for p, m, v in zip(self.params, views(self.exp_avg), views(self.exp_avg_sq))
        }

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One Adam update of every parameter at learning rate ``lr``, from the gradients in ``grad``."""
        self.steps += 1
        beta1, beta2 = self.beta1, self.beta2
        # Python floats, as torch.optim.Adam computes them on the CPU (its step count is read back as a float).
        step = float(self.steps)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        self.exp_avg.lerp_(self.grad, 1 - beta1)
        self.exp_avg_sq.mul_(self._beta2).addcmul_(self.grad, self.grad, value=1 - beta2)
        self._bias_correction2_sqrt.fill_(bias_correction2_sqrt)
        torch.sqrt(self.exp_avg_sq, out=self._denom).div_(self._bias_correction2_sqrt).add_(self._eps)
        self.flat.addcdiv_(self.exp_avg, self._denom, value=-(lr / bias_correction1))

    def release(self) -> None:
        """Give each parameter its own copy of its values, so they no longer share the buffer's storage
        (``safetensors`` refuses to save tensors that share memory)."""
        for p in self.params:
            p.data = p.data.clone()
