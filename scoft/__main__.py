"""``python -m scoft COMMAND ...``: each command lives in its own module and is imported on use."""

from __future__ import annotations

import importlib
import sys

# command -> "module:function"; each function takes argv (list[str]) and returns an exit status.
COMMANDS: dict[str, tuple[str, str]] = {
    "fetch-ccub": ("scoft.data:fetch_main", "download a CCUB-style sheet's images and write metadata.jsonl"),
    "caption": ("scoft.data:caption_main", "fill blip_text with a local captioning model"),
    "negatives": ("scoft.negatives:main", "make depth-guided negatives with the frozen base model"),
    "train": ("scoft.train:main", "train a LoRA variant (ldm, m, mp, mpc)"),
    "export-lora": ("scoft.checkpoint:export_main", "write a checkpoint's LoRA as a diffusers-format file"),
    "sample": ("scoft.sample:main", "sample every image of a study design and write manifest.jsonl"),
    "tiny": ("scoft.tiny:main", "build tiny random offline models for tests and the demo"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        print("usage: python -m scoft COMMAND [options]\n\ncommands:")
        for name, (_, help_text) in COMMANDS.items():
            print(f"  {name:<12} {help_text}")
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    target, _ = COMMANDS[argv[0]]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
