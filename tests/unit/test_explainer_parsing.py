"""The constrained parser on messy model answers, including the broken dictionary of the Team 57
report ("Image Classification and Artifact Detection")."""

import pytest

from pixelproof.explainer.parsing import clean_sentence, fallback_explanation, parse_explanations

ALIAS = "Aliasing along high-contrast edges"
SURF = "Discontinuous surfaces"
SCALE = "Scale inconsistencies within single objects"
CINE = "Cinematization Effects"
GHOST = "Ghosting effects: Semi-transparent duplicates of elements"
ASKED = [ALIAS, SURF, SCALE, CINE]

# Team 57's slide ("MODIFICATIONS"): the VLM's answer after a naive parser made a dict of it.
TEAM57_BROKEN = """{
"The image contains the following artifacts": "\\n\\n1",
"Aliasing along high-contrast edges": " This artifact is visible in the image as a jagged edge around the airplane",
"The edges are not smooth and have a staircase effect": " The edges are not smooth and have a staircase effect",
"This is due to the low resolution of the image": " This is due to the low resolution of the image",
"2": "\\n\\n2",
"Discontinuous surfaces": " This artifact is visible in the image as a discontinuous surface around the airplane",
"The surface is not smooth and has a discontinuous appearance": " The surface is not smooth and has a discontinuous appearance",
"3": "\\n\\n3",
"Scale inconsistencies within single object": " This artifact is visible in the image as a difference in scale between the airplane and the other objects in the image",
"The airplane is larger than the other objects, and the scale is not consistent": " The airplane is larger than the other objects, and the scale is not consistent",
"These artifacts are important in terms of the image's overall composition, realism, and visual quality": "\\n\\nThese artifacts are important in terms of the image's overall composition, realism, and visual quality",
"The image appears unrealistic and low-quality due to the presence of these artifacts": " The image appears unrealistic and low-quality due to the presence of these artifacts",
"": "",
}"""  # noqa: E501


def test_team57_broken_dictionary_is_regrouped_under_the_asked_artifacts():
    result = parse_explanations(TEAM57_BROKEN, ASKED)
    assert result.explanations == {
        ALIAS: "This artifact is visible in the image as a jagged edge around the airplane. "
        "The edges are not smooth and have a staircase effect. "
        "This is due to the low resolution of the image.",
        SURF: "This artifact is visible in the image as a discontinuous surface around the "
        "airplane. The surface is not smooth and has a discontinuous appearance.",
        # "within single object" (model) matched "within single objects" (taxonomy); the
        # summary sentences after it are not part of its explanation
        SCALE: "This artifact is visible in the image as a difference in scale between the "
        "airplane and the other objects in the image. The airplane is larger than the other "
        "objects, and the scale is not consistent.",
    }
    assert result.missing == [CINE]
    assert result.duplicates == []


def test_numbered_markdown_list_with_unknown_name_and_heading_lines():
    text = (
        "The image contains the following artifacts:\n\n"
        "1. **Aliasing along high-contrast edges**: The wing edges show a staircase pattern.\n"
        "2. **Discontinuous surfaces** - The fuselage surface breaks near the tail.\n"
        "3. Purple elephants: they are everywhere.\n"
        "4. Scale inconsistencies within single objects\n"
        "   The left wing is larger than the right.\n"
        "These artifacts make the image look fake."
    )
    result = parse_explanations(text, ASKED)
    assert result.explanations == {
        ALIAS: "The wing edges show a staircase pattern.",
        SURF: "The fuselage surface breaks near the tail.",
        SCALE: "The left wing is larger than the right.",
    }
    assert result.ignored == ["The image contains the following artifacts", "Purple elephants"]
    assert result.missing == [CINE]


def test_team91_bullet_format():
    text = (
        "- Inconsistent object boundaries:* The boundaries of the airplane merge with the sky.\n"
        "- Texture bleeding between adjacent regions:* Colour bleeds into the sky."
    )
    names = ["Inconsistent object boundaries", "Texture bleeding between adjacent regions"]
    assert parse_explanations(text, names).explanations == {
        names[0]: "The boundaries of the airplane merge with the sky.",
        names[1]: "Colour bleeds into the sky.",
    }


def test_repeated_keys_first_non_empty_wins():
    text = (
        '{"Ghosting effects": "", "Ghosting effects": "A faint copy of the dog appears to its '
        'right", "Ghosting effects": "again"}'
    )
    result = parse_explanations(text, [GHOST])
    # "Ghosting effects" (the part before the colon) names the full taxonomy class
    assert result.explanations == {GHOST: "A faint copy of the dog appears to its right."}
    assert result.duplicates == [GHOST]


def test_unknown_and_unasked_names_never_become_keys():
    text = '{"Frequency domain signatures": "Peaks.", "Made-up artifact": "Something odd"}'
    result = parse_explanations(text, [CINE])
    assert result.explanations == {}
    assert result.missing == [CINE]
    assert result.ignored == ["Frequency domain signatures", "Made-up artifact"]


@pytest.mark.parametrize("text", ["", None, "   \n\n", "{}", "```json\n{}\n```", "1.\n2.\n3."])
def test_empty_answers_give_nothing(text):
    result = parse_explanations(text, ASKED)
    assert result.explanations == {}
    assert result.missing == ASKED


def test_a_list_of_names_only_is_no_explanation():
    # Team 57's first slide: the model answered with the artifact names and nothing else
    text = '{"index": 88, "explanation": ["Cinematization Effects", "Ghosting effects"]}'
    assert parse_explanations(text, [CINE, GHOST]).explanations == {}
    assert parse_explanations(
        '{"Cinematization Effects": "Cinematization effects"}', [CINE]
    ).missing == [CINE]


def test_json_in_a_code_fence_with_escapes_and_trailing_comma():
    text = '```json\n{\n "Cinematization Effects": "Teal-and-orange \\"movie\\" grading",\n}\n```'
    assert parse_explanations(text, [CINE]).explanations == {
        CINE: 'Teal-and-orange "movie" grading.'
    }


def test_python_style_dict_with_single_quotes():
    text = "{'Cinematization Effects': 'Strong colour grading', 'Discontinuous surfaces': 'Seams'}"
    assert parse_explanations(text, [CINE, SURF]).explanations == {
        CINE: "Strong colour grading.",
        SURF: "Seams.",
    }


def test_free_prose_mentioning_an_artifact():
    text = "Overall it looks odd. The sky shows cinematization effects with heavy grading. Bye."
    assert parse_explanations(text, ASKED).explanations == {
        CINE: "The sky shows cinematization effects with heavy grading."
    }


def test_clean_sentence_and_fallback():
    assert clean_sentence('  "**the edge** is jagged"  ') == "The edge is jagged."
    assert clean_sentence(" -- 12 -- ") == ""
    assert fallback_explanation(CINE, "heavy grading", "in the upper left", 0.1234) == (
        "The artifact detector found cinematization effects in the upper left of the image "
        "(CLIP score 0.12): heavy grading."
    )
    assert fallback_explanation(CINE, "", "across the whole image", 0.5) == (
        "The artifact detector found cinematization effects across the whole image "
        "(CLIP score 0.50): a pattern typical of generated images."
    )
