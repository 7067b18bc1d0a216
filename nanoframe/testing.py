"""`gradcheck`: compare an op's hand-written backward with central finite differences in float64."""
import numpy as np

from nanoframe.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when analytic and numeric gradients disagree."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0, raise_exception=True):
    """Check d(fn)/d(input) for every float input that requires grad.

    fn maps the input Tensors to one Tensor (or a tuple, whose first element is checked). The
    output is reduced to a scalar with fixed random weights, so every output element counts.
    Returns the worst relative error per input (None for inputs not checked), where the relative
    error of one element is |analytic - numeric| / max(|numeric|, 1). Raises GradcheckError naming
    the input and the worst element when `np.allclose(analytic, numeric, rtol, atol)` fails.
    """
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} is {t.dtype}; use float64 inputs")

    def run():
        out = fn(*inputs)
        return out[0] if isinstance(out, tuple) else out

    out = run()
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    for t in inputs:
        if isinstance(t, Tensor):
            t.grad_array = None
    (out * Tensor(weights)).sum().backward()

    errors = []
    for i, t in enumerate(inputs):
        if not (isinstance(t, Tensor) and t.requires_grad):
            errors.append(None)
            continue
        analytic = np.zeros(t.shape) if t.grad_array is None else t.grad_array.copy()
        numeric = np.zeros(t.shape)
        flat, num = t.array.reshape(-1), numeric.reshape(-1)  # views: perturb in place
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            f_plus = float(np.sum(run().array * weights))
            flat[k] = orig - eps
            f_minus = float(np.sum(run().array * weights))
            flat[k] = orig
            num[k] = (f_plus - f_minus) / (2 * eps)
        rel = np.abs(analytic - numeric) / np.maximum(np.abs(numeric), 1.0)
        worst = float(rel.max()) if rel.size else 0.0
        errors.append(worst)
        if raise_exception and not np.allclose(analytic, numeric, rtol=rtol, atol=atol):
            k = np.unravel_index(int(np.argmax(rel)), rel.shape)
            raise GradcheckError(
                f"gradcheck: input {i} of shape {t.shape}: worst relative error {worst:.3g} at {k}: "
                f"analytic {analytic[k]:.8g} vs numeric {numeric[k]:.8g}"
            )
    return errors
