#!/usr/bin/env python3
"""Weight average ("model soup") of two model folders of the same architecture: out = (1 - w) * A + w * B for every
tensor of every .safetensors file (same names, shapes and dtypes required); config files are copied from A.
Usage: average_models.py A B W OUT"""
import json, os, shutil, struct, sys
import torch

DT = {"BF16": torch.bfloat16, "F32": torch.float32, "F16": torch.float16}


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header_bytes = f.read(n)
        return header_bytes, json.loads(header_bytes), f.read()


def main(a, b, w, out):
    w = float(w)
    os.makedirs(out, exist_ok=True)
    for name in sorted(os.listdir(a)):
        pa, pb = os.path.join(a, name), os.path.join(b, name)
        if os.path.isdir(pa):
            continue
        if not name.endswith(".safetensors"):
            shutil.copy(pa, os.path.join(out, name))
            continue
        hraw, ha, da = read(pa)
        _, hb, db = read(pb)
        if {k: v for k, v in ha.items() if k != "__metadata__"} != {k: v for k, v in hb.items() if k != "__metadata__"}:
            sys.exit(f"{name}: tensor names, shapes, dtypes or offsets differ between {a} and {b}")
        buf = bytearray(da)
        for k, v in ha.items():
            if k == "__metadata__":
                continue
            s, e = v["data_offsets"]
            dt = DT[v["dtype"]]
            ta = torch.frombuffer(bytearray(da[s:e]), dtype=dt).float()
            tb = torch.frombuffer(bytearray(db[s:e]), dtype=dt).float()
            buf[s:e] = ((1 - w) * ta + w * tb).to(dt).numpy().tobytes() if dt != torch.bfloat16 else \
                ((1 - w) * ta + w * tb).to(dt).view(torch.int16).numpy().tobytes()
        with open(os.path.join(out, name), "wb") as f:
            f.write(struct.pack("<Q", len(hraw)) + hraw + bytes(buf))
    print(f"{out} = {1 - w:g} * {a} + {w:g} * {b}")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
