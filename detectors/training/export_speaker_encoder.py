"""Export resemblyzer's pretrained speaker encoder (GE2E, 3x256 LSTM) to ONNX.

Runs in a throwaway venv with torch, never in the project's runtime environment:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy onnx onnxruntime
    /tmp/torchvenv/bin/pip download --no-deps -d /tmp/rz resemblyzer
    /tmp/torchvenv/bin/python detectors/training/export_speaker_encoder.py \
        --wheel /tmp/rz/Resemblyzer-0.1.4-py3-none-any.whl

The network is re-declared here (the same three layers as resemblyzer.VoiceEncoder) so
that neither resemblyzer nor its webrtcvad dependency has to be importable; only the
weights (`pretrained.pt`, Apache-2.0, inside the wheel) are read. Writes
detectors/models/speaker_encoder.onnx (input: mel power spectrogram, batch x frames x 40,
*not* log; output: L2-normalised 256-d embedding) and its int8 copy.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def main() -> None:
    import numpy as np
    import torch
    from torch import nn

    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=MODELS_DIR)
    args = ap.parse_args()

    with zipfile.ZipFile(args.wheel) as z:
        blob = z.read("resemblyzer/pretrained.pt")
    state = torch.load(io.BytesIO(blob), map_location="cpu")["model_state"]

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)
            self.relu = nn.ReLU()

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _, (hidden, _) = self.lstm(mels)
            raw = self.relu(self.linear(hidden[-1]))
            return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-9)

    enc = Encoder()
    missing = enc.load_state_dict(state, strict=False)
    assert not missing.missing_keys, missing
    enc.eval()
    n_params = sum(p.numel() for p in enc.parameters())
    args.out.mkdir(parents=True, exist_ok=True)
    fp32 = args.out / "speaker_encoder.onnx"
    dummy = torch.rand(2, 160, 40)
    torch.onnx.export(
        enc,
        (dummy,),
        str(fp32),
        input_names=["mels"],
        output_names=["embedding"],
        dynamic_axes={"mels": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = args.out / "speaker_encoder.int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    x = np.random.default_rng(0).random((4, 160, 40)).astype(np.float32) * 5
    with torch.no_grad():
        ref = enc(torch.from_numpy(x)).numpy()
    for path in (fp32, int8):
        out = ort.InferenceSession(str(path)).run(None, {"mels": x})[0]
        cos = (out * ref).sum(axis=1)
        print(f"{path.name}: {path.stat().st_size} bytes, cosine to torch {cos.min():.5f}")
    print(f"parameters: {n_params}")


if __name__ == "__main__":
    main()
