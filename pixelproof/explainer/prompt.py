"""The question put to the vision-language model and the answer it is trained to give.

Explanation (``explain``) and fine-tuning (``synartifact`` data) build the prompt the same way,
so a fine-tuned adapter sees at inference the prompt it was trained on: the artifacts by name,
each with where it is, and a request for a JSON object keyed by exactly those names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

DEFAULT_INSTRUCTION = (
    "This image was flagged as AI-generated. An artifact detector found these artifacts:\n"
    "{artifacts}\n"
    "For each artifact, explain in one or two sentences what in the image shows it. Answer only "
    "with a JSON object whose keys are exactly the artifact names above and whose values are "
    "the explanations."
)


def artifact_list(artifacts: Sequence[tuple[str, str | None]]) -> str:
    """``[(name, region), ...]`` -> ``1. Name (in the upper left)`` lines."""
    return "\n".join(
        f"{i}. {name}" + (f" ({region})" if region else "")
        for i, (name, region) in enumerate(artifacts, start=1)
    )


def build_prompt(
    artifacts: Sequence[tuple[str, str | None]], instruction: str = DEFAULT_INSTRUCTION
) -> str:
    if "{artifacts}" not in instruction:
        raise ValueError(
            "the prompt instruction needs an '{artifacts}' placeholder where the detected "
            f"artifacts are listed; got {instruction!r}"
        )
    return instruction.replace("{artifacts}", artifact_list(artifacts))


def format_answer(explanations: Mapping[str, str]) -> str:
    """The training target: the JSON object the prompt asks for."""
    return json.dumps(dict(explanations), ensure_ascii=False, indent=1)


def chat(prompt: str, answer: str | None = None) -> list[dict]:
    """Chat-template messages: one user turn with the image and the prompt, then the answer."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages
