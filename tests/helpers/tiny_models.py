"""Tiny random CLIP, Idefics2 and LLaVA checkpoints, saved like Hub ones, built offline.

Import as ``from helpers.tiny_models import ...``. Each ``save_tiny_*`` writes a directory that
the real code loads with ``from_pretrained`` (model, tokenizer or processor, chat template). The
tokenizer is a byte-level BPE trained in memory on a few sentences (any text encodes; nothing
downloaded).
"""

from __future__ import annotations

from pathlib import Path

import torch

_CORPUS = [
    "an image with texture repetition patterns.",
    "a synthetic image showing aliasing along high-contrast edges.",
    '{"Over-smoothing of natural textures": "The fur looks waxy in the upper left."}',
    "The image shows blurred boundaries in fine details near the centre.",
]
IDEFICS2_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: "
    "{% endif %}{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% if message['role'] == 'user' %} {% else %}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def tiny_tokenizer(bos_eos: bool = False):
    """A byte-level BPE ``PreTrainedTokenizerFast`` (<unk>=0, <s>=1, </s>=2); ``bos_eos``
    wraps every text in <s> ... </s> as CLIP's tokenizer does (CLIP pools at the EOS)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS, trainer)
    if bos_eos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="</s>",
        model_max_length=4096,
    )


def save_tiny_clip(root: Path) -> Path:
    """CLIPModel (vision 32x32, 8x8 patches: a 4x4 patch grid) + tokenizer + image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(bos_eos=True)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    text.update(vocab_size=len(tokenizer), max_position_embeddings=128)
    text.update(bos_token_id=1, eos_token_id=2, pad_token_id=2)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    vision.update(patch_size=8, image_size=32)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    CLIPModel(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(root)
    return root


def save_tiny_idefics2(root: Path) -> Path:
    from transformers import (
        Idefics2Config,
        Idefics2ForConditionalGeneration,
        Idefics2ImageProcessor,
        Idefics2Processor,
    )

    torch.manual_seed(0)
    processor = Idefics2Processor(
        image_processor=Idefics2ImageProcessor(
            do_image_splitting=False, size={"shortest_edge": 32, "longest_edge": 32}
        ),
        tokenizer=tiny_tokenizer(),
        image_seq_len=4,
        chat_template=IDEFICS2_TEMPLATE,
    )
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    text.update(num_key_value_heads=1, vocab_size=len(processor.tokenizer), pad_token_id=2)
    config = Idefics2Config(
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        perceiver_config=dict(
            hidden_size=32,
            rms_norm_eps=1e-6,
            resampler_n_latents=4,
            resampler_depth=1,
            resampler_n_heads=2,
            resampler_head_dim=8,
            num_key_value_heads=1,
        ),
        text_config=text,
        image_token_id=processor.image_token_id,
    )
    Idefics2ForConditionalGeneration(config).save_pretrained(root)
    processor.save_pretrained(root)
    return root


def save_tiny_llava(root: Path) -> Path:
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLS token, as llava-1.5's processor
        chat_template=LLAVA_TEMPLATE,
    )
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
    vision.update(model_type="clip_vision_model", image_size=32, patch_size=8, projection_dim=16)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    text.update(model_type="llama", num_key_value_heads=1, vocab_size=len(tokenizer))
    text.update(pad_token_id=2)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=processor.image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    LlavaForConditionalGeneration(config).save_pretrained(root)
    processor.save_pretrained(root)
    return root
