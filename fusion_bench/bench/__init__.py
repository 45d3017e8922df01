"""Throughput: time a model on synthetic tensors of the configured shapes (DESIGN §8).

:func:`run_bench` builds the model of a run configuration (encoders + fusion + head, or the fusion
alone with ``scope="fusion"``), feeds it random tensors of the configured shapes (the paper's by
default: windows of 300 frames, visual 512, audio 128, text 768) and times

- inference at the run batch and at batch 1 (latency p50 / p95),
- training steps at the run batch: forward, the run's loss, backward and the run's optimiser
  (Adam with the configured learning rate and weight decay), as :func:`fusion_bench.train.fit`,

each as ``warmup`` untimed calls, then ``repeats`` calls timed one by one: with CUDA events and a
synchronisation per call on GPU, with ``time.perf_counter`` on CPU. A measurement reports the
median and the interquartile range (IQR = q75 − q25) of those calls: the spread of repeated
steps on one machine, not a spread over seeds or machines.

Also reported: frames/s and windows/s; peak memory per phase (GPU: ``max_memory_allocated``; CPU:
the process's peak RSS, reset before each phase where Linux allows); parameters, total and
trainable, split into encoders (with their BatchNorms) / fusion / head; FLOPs per window from
:class:`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions; counted once, one
window through a CPU copy); on GPU, achieved FLOP/s as a fraction of the device's peak; with
``compile=True`` (``compile_mode="reduce-overhead"``: CUDA graphs, which on a fast GPU remove the
kernel-launch cost that bounds these small models at batch 12), the first-call times and
dynamo's graph-break count. An out-of-memory error in a
phase is caught and reported in that phase (status ``"oom"``), and the other phases still run;
``find_max_batch`` searches the largest batch whose training step fits.
"""
