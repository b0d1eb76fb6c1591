"""liveguard detectors: the plugin contract, the registry, built-in detectors and the
streaming runtime. Imports `signals` only.

- `protocol` / `base` / `registry`: the `Detector` protocol, a base class, entry-point
  discovery (`liveguard.detectors`) with validation at registration.
- `runtime` / `metrics`: many sessions, bounded buffers, micro-batched models, drop-oldest
  under backlog, risk-first scheduling, Prometheus metrics.
- `frontend` / `vad` / `speaker_encoder`: shared per-window features (one STFT), Silero VAD
  and the speaker encoder, all in onnxruntime.
- Built-ins: `quality`, `synthetic_voice`, `replay`, `voice_consistency`, `lipsync`,
  `turn_taking`, `session_anomaly`, `face_dynamics`; `video` extracts face series at the edge
  (optional `[video]` extra).
- `evaluation`, `degrade`, `dataset`, `training/`: measurement and training; `models/`: the
  ONNX files and their model cards.
"""
