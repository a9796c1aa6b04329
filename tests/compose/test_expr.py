import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conceptebm.compose.expr import (
    Atom,
    Conj,
    Disj,
    ExpressionError,
    Neg,
    Weighted,
    compile_expression,
    parse,
)
from conceptebm.concepts import Concept
from conceptebm.energies import And, ConditionalEnergy, Not, Or, Scale


class Target(ConditionalEnergy):
    """E(x|c) = |x[:, :dim] - c|^2: a toy concept energy with a known minimum."""

    def energy(self, x, c):
        return ((x[:, : self.concept.dim] - c) ** 2).sum(1)


MODELS = {
    "position": Target(Concept.continuous("position", 2)),
    "color": Target(Concept.categorical("color", ["red", "green", "blue"])),
    "shape": Target(Concept.categorical("shape", ["sphere", "cube", "cylinder"])),
    "size": Target(Concept.continuous("size", 1, 0.2, 0.5)),
}


def test_precedence_and_tree():
    tree = parse("a=1 | b=x & ~c=(1,2) | 0.5*d=y")
    assert isinstance(tree, Disj) and len(tree.terms) == 3
    mid = tree.terms[1]
    assert isinstance(mid, Conj)
    assert mid.terms[0] == Atom("b", "x", 6)
    assert isinstance(mid.terms[1], Neg) and mid.terms[1].term.value == (1.0, 2.0)
    assert isinstance(tree.terms[2], Weighted) and tree.terms[2].weight == 0.5


def test_parentheses_override_precedence():
    tree = parse("(a=1 | b=2) & c=3")
    assert isinstance(tree, Conj) and isinstance(tree.terms[0], Disj)


def test_build_matches_hand_written_energy():
    e = compile_expression("position=(0.3,-0.2) & color=red & ~shape=cube", MODELS, alpha=0.1)
    assert isinstance(e, And) and isinstance(e.terms[2], Not) and e.terms[2].alpha == 0.1
    x = torch.randn(5, 3)
    hand = (((x[:, :2] - torch.tensor([0.3, -0.2])) ** 2).sum(1)
            + ((x - torch.tensor([1.0, 0, 0])) ** 2).sum(1)
            - 0.1 * ((x - torch.tensor([0.0, 1, 0])) ** 2).sum(1))
    torch.testing.assert_close(e(x), hand)
    assert repr(e) == "position(0.3,-0.2) & color('red') & Not(shape('cube'), alpha=0.1)"


def test_build_or_temperature_and_weights():
    e = compile_expression("(position=(0,0) & color=red) | 2*color=blue", MODELS,
                           temperature=0.1)
    assert isinstance(e, Or) and e.temperature == 0.1 and isinstance(e.terms[1], Scale)


@pytest.mark.parametrize("text, pos, fragment", [
    ("color=red &", 11, "expected a concept"),
    ("color=red & & shape=cube", 12, "expected a concept"),
    ("color=red $ shape=cube", 10, "unexpected character"),
    ("position=(0.3,", 14, "expected a number"),
    ("position=(0.3 0.2)", 14, "expected ')'"),
    ("(color=red", 10, "expected ')'"),
    ("color=red)", 9, "unexpected ')'"),
    ("color", 5, "expected '='"),
    ("-1*color=red", 0, "weight must be"),
    ("", 0, "empty expression"),
])
def test_syntax_errors_point_at_the_character(text, pos, fragment):
    with pytest.raises(ExpressionError) as err:
        parse(text)
    assert err.value.pos == pos
    assert fragment in str(err.value)
    assert str(err.value).splitlines()[-1] == "  " + " " * pos + "^"


def test_unknown_concept_lists_known_ones():
    with pytest.raises(ExpressionError, match="known concepts: color, position, shape, size"):
        compile_expression("colour=red", MODELS)


def test_unknown_value_lists_known_values():
    with pytest.raises(ExpressionError, match="known values: red, green, blue") as err:
        compile_expression("position=(0,0) & color=purple", MODELS)
    assert err.value.pos == 17


def test_out_of_range_value_is_an_error_not_a_clamp():
    with pytest.raises(ExpressionError, match=r"must lie in \[-1.0, 1.0\]"):
        compile_expression("position=(1.5,0)", MODELS)
    with pytest.raises(ExpressionError, match="2 number"):
        compile_expression("position=0.3", MODELS)


def test_bare_negation_is_refused_with_a_hint():
    with pytest.raises(ExpressionError, match="ground"):
        compile_expression("~color=red", MODELS)
    with pytest.raises(ExpressionError, match="ground"):
        compile_expression("~color=red & ~shape=cube", MODELS)
    with pytest.raises(ExpressionError, match="double negation"):
        compile_expression("position=(0,0) & ~~color=red", MODELS)


ALPHABET = st.sampled_from(list("&|~*=(),.-+ 0123456789eE") + ["color", "red", "position",
                                                                 "shape", "cube", "x", "\t"])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=25).map("".join))
def test_fuzz_parser_only_raises_expression_errors(text):
    # Any input either compiles to an Energy or raises a clear ExpressionError (never another
    # exception): the contract of the `sample` command.
    try:
        e = compile_expression(text, MODELS)
    except ExpressionError as err:
        assert 0 <= err.pos <= len(text)
    else:
        assert e.is_grounded


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_fuzz_arbitrary_unicode(text):
    try:
        parse(text)
    except ExpressionError as err:
        assert 0 <= err.pos <= len(text)


def test_calibrated_build_weights_each_concept_by_its_gap():
    scales = {"position": 4.0, "color": 1.0}
    e = compile_expression("position=(0,0) & color=red | color=blue", MODELS,
                           temperature=0.5, scales=scales)
    # ref = sqrt(4 * 1) = 2: position weighted 2/4, color 2/1, temperature 0.5 * 2
    assert isinstance(e, Or) and e.temperature == 1.0
    x = torch.randn(4, 3)
    pos = ((x[:, :2]) ** 2).sum(1)
    red = ((x - torch.tensor([1.0, 0, 0])) ** 2).sum(1)
    blue = ((x - torch.tensor([0.0, 0, 1])) ** 2).sum(1)
    hand = -1.0 * torch.logsumexp(torch.stack([-(0.5 * pos + 2 * red), -2 * blue]), 0)
    torch.testing.assert_close(e(x), hand)


def test_calibrated_build_needs_every_scale():
    with pytest.raises(ExpressionError, match="no energy scale for concept 'color'"):
        compile_expression("position=(0,0) & color=red", MODELS, scales={"position": 1.0})


# ----------------------------------------------------------------------------- limits
@pytest.mark.parametrize("text", [
    "(" * 400 + "color=red" + ")" * 400,  # a RecursionError before the limit existed
    "~" * 400 + "color=red",
    "2*" * 400 + "color=red",
    "position=(0,0) & " + "(" * 70 + "color=red" + ")" * 70,
])
def test_deep_nesting_is_a_clear_error(text):
    with pytest.raises(ExpressionError, match="nested more than 64 deep") as err:
        parse(text)
    assert len(str(err.value).splitlines()[1]) < 80  # the text is shown around the error


def test_nesting_up_to_the_limit_compiles():
    e = compile_expression("(" * 60 + "position=(0,0) & color=red" + ")" * 60, MODELS)
    assert isinstance(e, And)


def test_huge_expressions_are_refused_with_the_limit():
    with pytest.raises(ExpressionError, match="characters long; the limit is 10000"):
        parse("color=red & " * 2000 + "color=red")
    e = compile_expression(" & ".join(["position=(0,0)"] * 500), MODELS)  # 8,500 characters
    assert isinstance(e, And) and len(e.terms) == 500


@pytest.mark.parametrize("weight", ["1e30", "101", "1e400"])
def test_weights_beyond_the_range_are_refused(weight):
    with pytest.raises(ExpressionError, match=r"weight must be a number in \(0, 100\]"):
        parse(f"{weight}*color=red")


NESTED = st.recursive(
    st.sampled_from(["color=red", "position=(0.1,0.2)", "shape=cube", "size=0.3"]),
    lambda inner: st.one_of(
        inner.map(lambda t: f"({t})"), inner.map(lambda t: f"~{t}"),
        inner.map(lambda t: f"2*{t}"),
        st.tuples(inner, st.sampled_from([" & ", " | "]), inner).map("".join)),
    max_leaves=200)


@settings(max_examples=150, deadline=None)
@given(NESTED, st.integers(0, 120))
def test_fuzz_nesting_depth_and_length(text, extra):
    # wrapped in up to 120 more parentheses: compiles, or an ExpressionError, never a crash
    text = "(" * extra + text + ")" * extra
    try:
        e = compile_expression(text, MODELS)
    except ExpressionError as err:
        assert 0 <= err.pos <= len(text)
    else:
        assert e.is_grounded
        e(torch.randn(2, 3))  # and the built energy evaluates (no recursion limit there)


def test_classifier_negation_groups_one_concepts_negated_values(gen):
    from conceptebm.compose.expr import build
    from conceptebm.energies import NotAny

    t = {"color": 0.5, "shape": 2.0}
    e = compile_expression("position=(0.1,0.2) & ~color=red & ~color=blue & ~shape=cube",
                           MODELS, temperatures=t, negation_weight=3.0)
    assert isinstance(e, And)
    parts = {type(p.term).__name__ if isinstance(p, Scale) else type(p).__name__
             for p in e.terms}
    assert parts == {"Bound", "NotAny"} and len(e.terms) == 3  # two NotAny, one per concept
    color = next(p.term for p in e.terms if isinstance(p, Scale) and p.term.cond.concept.name
                 == "color")
    assert color.mask.tolist() == [[True, False, True]] and color.temperature == 0.5
    # the energy: position's plus 3 * -T log p(green | x) plus 3 * -T log(1 - p(cube | x))
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    col_e = torch.stack([MODELS["color"](x, MODELS["color"].concept.encode(
        torch.full((5,), v)).to(x)) for v in range(3)], 1)
    p_col = torch.softmax(-col_e / 0.5, 1)
    shp_e = torch.stack([MODELS["shape"](x, MODELS["shape"].concept.encode(
        torch.full((5,), v)).to(x)) for v in range(3)], 1)
    p_shp = torch.softmax(-shp_e / 2.0, 1)
    pos = MODELS["position"].given((0.1, 0.2))(x)
    want = pos + 3 * -0.5 * torch.log(p_col[:, 1]) + 3 * -2.0 * torch.log(1 - p_shp[:, 1])
    torch.testing.assert_close(e(x), want)
    # without temperatures, or for a concept without one, it is the paper's Not
    plain = compile_expression("position=(0.1,0.2) & ~color=red", MODELS)
    assert isinstance(plain.terms[1], Not)
    other = compile_expression("position=(0.1,0.2) & ~size=0.3", MODELS, temperatures=t)
    assert isinstance(other.terms[1], Not)
    # per-chain values (tensors, as the table rows use) give a per-chain mask
    tree = Conj((Atom("position", (0.0, 0.0), 0), Neg(Atom("color", torch.tensor([0, 1]), 0)),
                 Neg(Atom("color", torch.tensor([1, 1]), 0))))
    e = build(tree, MODELS, temperatures=t)
    (na,) = [p for p in e.terms if isinstance(p, NotAny)]
    assert na.mask.tolist() == [[True, True, False], [False, True, False]]
    with pytest.raises(ExpressionError, match="exclude every value"):
        compile_expression("position=(0,0) & ~color=red & ~color=green & ~color=blue", MODELS,
                           temperatures=t)


def test_classifier_negation_of_a_position_and_the_closed_world(gen):
    from conceptebm.energies import NotAny, NotNear, Or

    t = {"color": 0.5, "position": 0.2}
    e = compile_expression("color=red & ~position=(0.5,0.5) & ~position=(-1,0)", MODELS,
                           temperatures=t)
    (nn,) = [p for p in e.terms if isinstance(p, NotNear)]
    assert nn.radius == 0.4 and nn.temperature == 0.2 and not nn.closed_world
    # the two values' balls in one term
    alone = NotNear(MODELS["position"], [(0.5, 0.5)], 0.2)
    assert int(nn.mask.sum()) > int(alone.mask.sum())
    # closed world: "not red" is another colour, grounded on its own
    with pytest.raises(ExpressionError, match="no positive concept"):
        compile_expression("~color=red", MODELS, temperatures=t)
    closed = compile_expression("~color=red", MODELS, temperatures=t, closed_world=True)
    assert isinstance(closed, NotAny) and closed.is_grounded
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    want = Or(MODELS["color"].given("green"), MODELS["color"].given("blue"), temperature=0.5)
    torch.testing.assert_close(closed(x), want(x))
    # a continuous concept without a tolerance cannot be negated so
    with pytest.raises(ExpressionError, match="give a radius"):
        compile_expression("color=red & ~size=0.3", MODELS, temperatures={"size": 1.0})
