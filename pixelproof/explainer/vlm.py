"""A vision-language model through ``transformers``: Idefics2 by default, LLaVA, or any
``AutoModelForImageTextToText`` checkpoint with an ``AutoProcessor`` that has a chat template.

Loading: 4-bit NF4 (as in the Team 57 report, "Image Classification and Artifact Detection":
Idefics2-8b, NF4, float16 compute) when ``load_in_4bit`` is ``auto`` and a CUDA GPU and
``bitsandbytes`` are present; plain weights otherwise (bfloat16 or float16 on a GPU, float32 on the
CPU). The same object serves generation (``explain``) and fine-tuning batches (``training_batch``),
so both see one prompt format.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from pixelproof.explainer.prompt import chat
from pixelproof.utils.hub import load_or_fail, refuse_missing_weights

log = logging.getLogger(__name__)

OPTION = "vlm.name_or_path"
# Marks the answer inside a rendered chat template, to find what the template puts around it.
_ANSWER_MARK = "\u2063ANSWER\u2063"
# End-of-turn tokens some chat templates use besides the tokenizer's EOS (Idefics2).
_END_OF_TURN = ("<end_of_utterance>",)


def use_4bit(setting: bool | str) -> bool:
    """``auto``: 4-bit when CUDA and bitsandbytes are there; ``true`` demands both."""
    available = torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None
    if setting == "auto":
        return available
    if setting and not available:
        raise RuntimeError(
            "vlm.load_in_4bit=true needs a CUDA GPU and bitsandbytes (pip install bitsandbytes); "
            "pass vlm.load_in_4bit=false (or auto) to load plain weights"
        )
    return bool(setting)


def pick_dtype(setting: str, quantized: bool) -> torch.dtype:
    if setting != "auto":
        try:
            return getattr(torch, setting)
        except AttributeError:
            raise ValueError(
                f"vlm.dtype={setting}: pass auto, float32, bfloat16 or float16"
            ) from None
    if quantized:
        return torch.float16  # Team 57's compute dtype
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_adapter(model, adapter: str):
    """Wrap ``model`` with the LoRA adapter saved (``save_pretrained``) in ``adapter``."""
    from pathlib import Path

    from peft import PeftModel

    if not (Path(adapter).expanduser() / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"vlm.adapter={adapter}: no adapter_config.json there; pass the adapter/ folder "
            "of a fine-tuning run (logs/train/runs/<run>/adapter), or null"
        )
    return PeftModel.from_pretrained(model, str(Path(adapter).expanduser()))


class VisionLanguageModel:
    """Args:
    name_or_path: Hub id (``HuggingFaceM4/idefics2-8b``, ``llava-hf/llava-1.5-7b-hf``) or local
        ``save_pretrained`` directory holding the model and its processor.
    load_in_4bit: ``auto`` | true | false (see the module docstring).
    dtype: ``auto`` | float32 | bfloat16 | float16.
    max_new_tokens / batch_size: generation length and images per ``generate`` call.
    processor_kwargs: passed to ``AutoProcessor.from_pretrained`` (Idefics2:
        ``do_image_splitting: false``, pointless for a 32x32 image and 5x the image tokens).
    device: ``auto`` | cpu | cuda[:N] (ignored for 4-bit, which bitsandbytes places on GPU 0).
    adapter: a LoRA adapter directory written by fine-tuning (``<run>/adapter``), or null.
    """

    def __init__(
        self,
        name_or_path: str,
        load_in_4bit: bool | str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 400,
        batch_size: int = 1,
        processor_kwargs: Mapping[str, Any] | None = None,
        device: str = "auto",
        adapter: str | None = None,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.name_or_path = name_or_path
        self.quantized = use_4bit(load_in_4bit)
        self.dtype = pick_dtype(dtype, self.quantized)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        kwargs: dict[str, Any] = {"dtype": self.dtype}
        if self.quantized:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=self.dtype,
                bnb_4bit_use_double_quant=True,
            )
            kwargs["device_map"] = {"": 0}
        self.processor = load_or_fail(
            lambda src, **kw: AutoProcessor.from_pretrained(
                src, **dict(processor_kwargs or {}), **kw
            ),
            name_or_path,
            OPTION,
            "vision-language processor",
        )
        if getattr(self.processor, "chat_template", None) is None:
            raise ValueError(
                f"{OPTION}={name_or_path}: its processor has no chat template; pass a "
                "checkpoint whose processor defines one (chat_template.jinja)"
            )
        model, info = load_or_fail(
            lambda src, **kw: AutoModelForImageTextToText.from_pretrained(
                src, output_loading_info=True, **kwargs, **kw
            ),
            name_or_path,
            OPTION,
            "vision-language model (AutoModelForImageTextToText)",
        )
        refuse_missing_weights(info, OPTION, name_or_path, "vision-language model")
        if not self.quantized:
            from pixelproof.explainer.artifact_scorer import pick_device

            model = model.to(pick_device(device))
        if adapter:
            model = load_adapter(model, adapter)
        self.model = model.eval()
        tokenizer = self.processor.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self._answer_prefix, self._answer_suffix = self._answer_frame()

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt_text(self, prompt: str) -> str:
        """The user turn rendered by the chat template, ending where the answer starts."""
        return self.processor.apply_chat_template(chat(prompt), add_generation_prompt=True)

    def _answer_frame(self) -> tuple[str, str]:
        """What the template writes between the generation prompt and the answer (Idefics2:
        a space) and after the answer (``<end_of_utterance>\\n``, ``</s>``)."""
        head = self.prompt_text("Q")
        full = self.processor.apply_chat_template(chat("Q", _ANSWER_MARK))
        before, _, after = full.partition(_ANSWER_MARK)
        prefix = before[len(head) :] if before.startswith(head) else " "
        return prefix, after

    def _inputs(self, images: Sequence[Image.Image], texts: Sequence[str]) -> dict:
        nested = [[image] for image in images]
        return self.processor(images=nested, text=list(texts), padding=True, return_tensors="pt")

    def _stop_ids(self) -> list[int]:
        ids = {self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id}
        flat = set()
        for i in ids:
            flat.update(i if isinstance(i, list) else [i])
        for token in _END_OF_TURN:
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if token_id is not None and token_id != self.tokenizer.unk_token_id:
                flat.add(token_id)
        return sorted(i for i in flat if i is not None)

    @torch.inference_mode()
    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        """One answer per (image, prompt), greedy decoding."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        answers: list[str] = []
        self.tokenizer.padding_side = "left"  # generation continues every row at its end
        for start in range(0, len(images), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            inputs = self._inputs(images[chunk], [self.prompt_text(p) for p in prompts[chunk]])
            inputs = inputs.to(self.device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                eos_token_id=self._stop_ids(),
                pad_token_id=self.tokenizer.pad_token_id,
            )
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            answers.extend(
                t.strip() for t in self.processor.batch_decode(new_tokens, skip_special_tokens=True)
            )
        return answers

    def training_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], answers: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Model inputs with ``labels``: the LM loss covers the answer and the template's
        end-of-turn text only (prompt, image tokens and padding are -100)."""
        self.tokenizer.padding_side = "right"
        heads = [self.prompt_text(p) for p in prompts]
        fulls = [h + self._answer_prefix + a + self._answer_suffix for h, a in zip(heads, answers)]
        batch = self._inputs(images, fulls)
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = -100
        for row, (image, head) in enumerate(zip(images, heads)):
            head_ids = self._inputs([image], [head])["input_ids"][0]
            n = len(head_ids)
            if not torch.equal(batch["input_ids"][row, :n], head_ids):
                raise RuntimeError(
                    f"{self.name_or_path}: the tokenised prompt is not a prefix of the tokenised "
                    "prompt+answer, so the loss mask would be wrong; this tokenizer merges "
                    "tokens across the answer boundary"
                )
            labels[row, :n] = -100
        batch["labels"] = labels
        return dict(batch)
