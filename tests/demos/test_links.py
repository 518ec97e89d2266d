"""Links: a tab's controls read from an address, checked, and written back (``demos.links``)."""

from urllib.parse import parse_qsl

import pytest

from demos import links
from demos import lm as lm_tab
from demos import mnist as mnist_tab
from demos import resnet as resnet_tab
from demos import toy as toy_tab

TOY = "?tab=toy&n=6&m=2&S=0.99&r=1&steps=2000&seed=0"


def test_the_toy_link_sets_every_control_by_its_course_name():
    assert toy_tab.LINK.read(TOY) == {"n": 6, "m": 2, "sparsity": 0.99, "decay": 1.0, "steps": 2000, "seed": 0}
    # The API's names read too, and a link may set only some controls.
    assert toy_tab.LINK.read("?tab=toy&sparsity=0.9&decay=0.5") == {"sparsity": 0.9, "decay": 0.5}


def test_written_links_read_back_to_the_same_values():
    values = toy_tab.LINK.read(TOY)
    assert toy_tab.LINK.write(values) == TOY
    assert toy_tab.LINK.read(toy_tab.LINK.write(values)) == values
    text = "Rivers rise in spring & fall; 50% of the time?"
    lm_link = lm_tab.link_for(False)
    written = lm_link.write({"model": lm_tab.default_model(), "layer": 3, "text": text, "view": lm_tab.VIEWS[1]})
    assert dict(parse_qsl(written[1:]))["text"] == text  # quoted in the address, whole when read
    assert lm_link.read(written) == {"model": lm_tab.default_model(), "layer": 3, "text": text, "view": lm_tab.VIEWS[1]}


def test_other_tabs_and_bare_tab_links_ask_nothing():
    assert toy_tab.LINK.read("?tab=mnist&example=3") is None
    assert toy_tab.LINK.read("?tab=toy") is None
    assert toy_tab.LINK.read("") is None
    assert toy_tab.LINK.read("?TAB=toy&n=6") is None  # names are as written
    assert toy_tab.LINK.read("?tab=Toy&n=6") == {"n": 6}  # the tab's name in any case, as ?tab= has always read it
    assert not toy_tab.LINK.asks("?tab=toy")
    assert toy_tab.LINK.asks("?tab=toy&n=6")


@pytest.mark.parametrize(
    "query, says",
    [
        ("?tab=toy&n=abc", "n='abc' is not a number"),
        ("?tab=toy&n=6.5", "not a whole number"),
        ("?tab=toy&S=nan", "not a finite number"),
        ("?tab=toy&S=1.5", "S"),  # ToyConfig's own note on sparsity
        ("?tab=toy&n=1", "n must be at least 2"),
        ("?tab=toy&steps=10", "steps must be at least 100"),
        ("?tab=toy&colour=red", "no parameter 'colour'"),
        ("?tab=toy&n=6&n=7", "n is given twice"),
        ("?tab=mnist&example=10", "example=10 is out of range"),
        ("?tab=resnet&model=nope", "there is no model 'nope'"),
        ("?tab=resnet&layer=layer9.conv", "has no conv layer 'layer9.conv'"),
        ("?tab=resnet&example=-1", "example=-1 is out of range"),
        ("?tab=lm&layer=99", "layer=99 is out of range"),
        ("?tab=lm&view=sideways", "view='sideways' is not one of"),
        ("?tab=lm&text=%20%20", "text is empty"),
        ("?tab=lm&model=gpt-17", "there is no model 'gpt-17'"),
    ],
)
def test_bad_values_are_refused_with_a_reason_never_replaced(query, says):
    tab = query.split("&")[0].split("=")[1]
    link = {"toy": toy_tab.LINK, "mnist": mnist_tab.LINK, "resnet": resnet_tab.LINK, "lm": lm_tab.link_for(False)}[tab]
    with pytest.raises(links.LinkError) as refused:
        link.read(query)
    message = str(refused.value)
    assert says in message
    assert "nothing from it ran" in message and "see the README" in message
    assert not link.asks(query)  # so the tab shows its own opening, and the note says why


def test_every_problem_is_listed_at_once():
    with pytest.raises(links.LinkError) as refused:
        toy_tab.LINK.read("?tab=toy&n=x&m=y&size=3")
    message = str(refused.value)
    assert "n='x'" in message and "m='y'" in message and "'size'" in message


def test_a_link_carries_a_sentence_not_a_document():
    with pytest.raises(links.LinkError, match="at most 2,000"):
        lm_tab.link_for(False).read("?tab=lm&text=" + "a" * (links.MAX_TEXT + 1))


def test_a_hub_model_is_linkable_only_where_the_app_allows_any_model():
    assert lm_tab.link_for(True).read("?tab=lm&model=EleutherAI/pythia-70m") == {"model": "EleutherAI/pythia-70m"}


def test_the_gallery_digit_on_the_pad_is_its_link_and_an_own_drawing_is_none():
    assert mnist_tab.example_shown(mnist_tab.example_on_pad(3)) == {"example": 3}
    assert mnist_tab.example_shown(mnist_tab.example_on_pad(0)) == {"example": 0}
    assert mnist_tab.example_shown("data:image/png;base64,iVBORw0KGgo=") == {}
    assert mnist_tab.example_shown(None) == {}
    assert mnist_tab.LINK.write({"example": 3}) == "?tab=mnist&example=3"


def test_the_resnet_example_shown_is_found_by_its_pixels():
    model = resnet_tab.resnets.DEFAULT
    picture, _ = resnet_tab.examples(model)[7]
    layer = resnet_tab.resnets.layer_names(model)[2]
    assert resnet_tab.example_shown(picture, model, layer) == {"model": model, "layer": layer, "example": 7}
    touched = picture.copy()
    touched[0, 0] = 255 - touched[0, 0]
    assert resnet_tab.example_shown(touched, model, layer) == {}
    values = resnet_tab.example_shown(picture, model, layer)
    assert resnet_tab.LINK.read(resnet_tab.LINK.write(values)) == values
