"""``python -m scoft COMMAND ...``: each command lives in its own module and is imported on use."""

from __future__ import annotations

import importlib
import sys

# command -> "module:function"; each function takes argv (list[str]) and returns an exit status.
COMMANDS: dict[str, tuple[str, str]] = {
    "fetch-ccub": ("scoft.fetch:fetch_main", "download a CCUB-style sheet's images and write metadata.jsonl"),
    "caption": ("scoft.caption:caption_main", "fill blip_text with a local captioning model"),
    "negatives": ("scoft.negatives:main", "make depth-guided negatives with the frozen base model"),
    "train": ("scoft.train_cli:main", "train a LoRA variant (ldm, m, mp, mpc)"),
    "export-lora": ("scoft.checkpoint:export_main", "write a checkpoint's LoRA as a diffusers-format file"),
    "sample": ("scoft.sample:main", "sample every image of a study design and write manifest.jsonl"),
    "tiny": ("scoft.tiny:main", "build tiny random offline models for tests and the demo"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in {"-h", "--help"}:
        known = ", ".join(COMMANDS)
        print(f"python -m scoft: error: unknown command {argv[0]!r} (commands: {known})", file=sys.stderr)
        return 2
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: python -m scoft COMMAND [options]\n\ncommands:")
        for name, (_, help_text) in COMMANDS.items():
            print(f"  {name:<12} {help_text}")
        return 0 if argv else 2
    from scoft.quiet import quiet_third_party

    quiet_third_party()
    target, _ = COMMANDS[argv[0]]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
