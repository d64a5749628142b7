"""A nanoGPT-style language model trained for a few SGD steps, written as a JAX user would: the
parameters are a pytree (a dict holding a list of per-block dicts), `lm.value_and_grad(loss,
has_aux=True)` gives the loss, the logits and the gradients in the parameters' structure, and
`lm.tree_map` applies the update.

Run: python examples/nanogpt.py [--steps 10] [--blocks 2] [--lr 0.2]
Tokens are one-hot rows (integer token ids and `lm.take` come with integer tensors).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import lean_mlir as lm

Params = dict[str, Any]


def init_params(rng: np.random.Generator, vocab: int, seq: int, width: int, blocks: int,
                dtype: Any = np.float32) -> Params:
    def normal(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(dtype)

    def norm() -> Params:
        return {"g": np.ones(width, dtype), "b": np.zeros(width, dtype)}

    def block() -> Params:
        return {"ln1": norm(), "ln2": norm(),
                "attn": {"wqkv": normal(width, 3 * width), "bqkv": np.zeros(3 * width, dtype),
                         "wo": normal(width, width), "bo": np.zeros(width, dtype)},
                "mlp": {"w1": normal(width, 4 * width), "b1": np.zeros(4 * width, dtype),
                        "w2": normal(4 * width, width), "b2": np.zeros(width, dtype)}}

    return {"wte": normal(vocab, width), "wpe": normal(seq, width), "blocks": [block() for _ in range(blocks)],
            "ln_f": norm()}


def attention(x: lm.Tensor, p: Params, heads: int) -> lm.Tensor:
    batch, seq, width = x.shape
    qkv = x @ p["wqkv"] + p["bqkv"]
    q, k, v = (qkv[:, :, i * width:(i + 1) * width].reshape(batch, seq, heads, -1).swapaxes(1, 2) for i in range(3))
    y = lm.scaled_dot_product_attention(q, k, v, causal=True)
    return y.swapaxes(1, 2).reshape(batch, seq, width) @ p["wo"] + p["bo"]


def loss(params: Params, tokens: lm.Tensor, targets: lm.Tensor, heads: int = 2) -> tuple[lm.Tensor, lm.Tensor]:
    """Mean cross-entropy of the next token; aux: the logits. tokens/targets: one-hot (batch, seq, vocab)."""
    x = tokens @ params["wte"] + params["wpe"]
    for blk in params["blocks"]:
        x = x + attention(lm.layer_norm(x, blk["ln1"]["g"], blk["ln1"]["b"]), blk["attn"], heads)
        h = lm.layer_norm(x, blk["ln2"]["g"], blk["ln2"]["b"]) @ blk["mlp"]["w1"] + blk["mlp"]["b1"]
        x = x + lm.gelu(h) @ blk["mlp"]["w2"] + blk["mlp"]["b2"]
    logits = lm.layer_norm(x, params["ln_f"]["g"], params["ln_f"]["b"]) @ params["wte"].T  # tied output head
    nll = -(targets * lm.log_softmax(logits, axis=-1)).sum(axis=-1)
    return nll.mean(), logits


def batch_of(rng: np.random.Generator, text: np.ndarray, batch: int, seq: int, vocab: int,
             dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    starts = rng.integers(0, len(text) - seq - 1, batch)
    ids = np.stack([text[s:s + seq + 1] for s in starts])
    eye = np.eye(vocab, dtype=dtype)
    return eye[ids[:, :-1]], eye[ids[:, 1:]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.2)
    args = ap.parse_args()
    vocab, seq, width, batch = 16, 16, 32, 8
    rng = np.random.default_rng(0)
    text = np.tile(np.arange(vocab), 64)  # a sequence with a rule to learn: each token is the last plus 1
    params = init_params(rng, vocab, seq, width, args.blocks)
    step = lm.value_and_grad(loss, has_aux=True)
    for i in range(args.steps):
        tokens, targets = batch_of(rng, text, batch, seq, vocab)
        start = time.perf_counter()
        (value, logits), grads = step(params, tokens, targets)
        params = lm.tree_map(lambda p, g: p - args.lr * g, params, grads)
        took = time.perf_counter() - start
        accuracy = float((logits.argmax(-1) == targets.argmax(-1)).mean())
        print(f"step {i}: loss {value:.4f}  next-token accuracy {accuracy:.2f}  ({took * 1e3:.1f} ms"
              f"{', with the compile' if i == 0 else ''})")
    print(f"{len(lm.tree_leaves(params))} parameter arrays in {args.blocks} blocks, updated with lm.tree_map")


if __name__ == "__main__":
    main()
