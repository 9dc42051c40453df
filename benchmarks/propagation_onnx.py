"""The exported propagation graph (`propagation.onnx`) against eager propagation, median ms of one
frame against 1 and 4 long-term memory frames, at the student's 241 x 433 network input.

    python benchmarks/propagation_onnx.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def median_ms(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deaot-t-deform")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    from vosuite.factory import create_model
    from vosuite.onnx.export import PropagationGraph, export_deaot, memory_input_names, sample_memory_inputs
    from vosuite.onnx.runtime import _session

    torch.set_num_threads(args.threads)
    model = create_model(args.model).eval()
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        session = _session(export_deaot(model, tmp).propagation, args.threads)
        declared = {node.name for node in session.get_inputs()}
        feats = model.encode_image(torch.randn(1, 3, 241, 433))
        label = torch.zeros(1, 1, 241, 433, dtype=torch.long)
        label[..., 80:160, 100:200] = 1
        _, _, own = model.propagate(feats[-1], ref_id_emb=model.id_embedding(model.one_hot(label)))
        graph = PropagationGraph(model)
        print("| memory frames | eager ms | ONNX Runtime ms |\n|---:|---:|---:|")
        for frames in (1, 4):
            memory = sample_memory_inputs(own, tuple(feats[-1].shape[2:]), frames)
            names = ["feat16", *memory_input_names(len(own))]
            feed = {n: t.numpy() for n, t in zip(names, (feats[-1], *memory), strict=True) if n in declared}
            eager = median_ms(lambda memory=memory: graph(feats[-1], *memory), args.repeats)
            onnx = median_ms(lambda feed=feed: session.run(None, feed), args.repeats)
            print(f"| {frames} | {eager:.1f} | {onnx:.1f} |")


if __name__ == "__main__":
    main()
