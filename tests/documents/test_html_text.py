from __future__ import annotations

import pytest

from keel.documents.html_text import html_to_text


@pytest.mark.parametrize(
    "html",
    [
        "<p>a</p><script>secret</script><p>b</p>",
        "<p>a</p><SCRIPT>secret</SCRIPT><p>b</p>",
        "<p>a</p><ScRiPt type='text/javascript'>secret</sCrIpT><p>b</p>",
        "<p>a</p><script>secret</script ><p>b</p>",
        "<p>a</p><script>secret</script\n>b",
        "<p>a</p><script\n>secret</script>b",
        "<p>a</p><script>secret",
        "<p>a</p><script>secret</scrip",
        "<p>a</p><script>secret</script/>b",
        "<p>a</p><script/>secret</script>b",
        "<p>a</p><script>x = '</p><p>secret'</script>b",
        "<p>a</p><script><!-- secret --></script>b",
        "<p>a</p><script>secret</script<script>secret</script>b",
        "<p>a</p><!-- <script>secret</script> -->b",
        "<p>a</p><!-- secret -->b",
        "<p>a</p><!-- unterminated comment <script>secret</script>",
        "<p>a</p><!-- unterminated comment secret",
        "<p>a</p><![CDATA[secret",
        "<p>a</p><a title='secret",
        "<p>a</p><![CDATA[<script>secret</script>]]>b",
        "<p>a</p><![CDATA[secret]]>b",
        "<p>a</p><?php echo 'secret'; ?>b",
        "<p>a</p><!secret>b",
        "<p>a</p><style>body{} /* secret */</style>b",
        "<p>a</p><noscript>secret</noscript>b",
        "<p>a</p><template><p>secret</p></template>b",
        "<p>a</p><iframe srcdoc='x'>secret</iframe>b",
        "<p>a</p><object data='x'>secret</object>b",
        "<p>a</p><svg><script>secret</script><text>secret</text></svg>b",
        "<p>a</p><svg><style>secret</svg>b",
        "<p>a</p><svg/><script>secret</script>b",
    ],
)
def test_hidden_content_never_reaches_the_text(html: str) -> None:
    text = html_to_text(html)
    assert "secret" not in text
    assert text.startswith("a")


def test_text_after_a_closed_script_is_kept() -> None:
    assert html_to_text("<p>before</p><script>secret</script><p>after</p>") == "before\n\nafter"


def test_an_empty_svg_hides_nothing_after_it() -> None:
    assert html_to_text("<p>a<svg/>b</p><embed src=x><p>c</p>") == "ab\n\nc"


def test_a_lone_angle_bracket_at_the_end_is_text() -> None:
    assert html_to_text("<p>a < b") == "a < b"


def test_a_visible_mention_of_a_script_tag_is_text() -> None:
    # Escaped markup is what a reader sees; the result is text, never rendered as HTML.
    assert html_to_text("<p>&lt;script&gt;</p>") == "<script>"


def test_blocks_become_paragraphs_and_lines() -> None:
    html = """<!DOCTYPE html>
    <html><head><title>Report</title><meta charset="utf-8"><style>p{}</style></head>
    <body>
      <h1>Results</h1>
      <p>Revenue   grew
         in <b>every</b> region.</p>
      <ul><li>North</li><li>South</li></ul>
      <table><tr><th>Region</th><th>Growth</th></tr><tr><td>North</td><td>12%</td></tr></table>
      <div>line one<br>line two</div>
    </body></html>"""
    assert html_to_text(html) == (
        "Report\n\nResults\n\nRevenue grew in every region.\n\nNorth\nSouth\n\n"
        "Region Growth\nNorth 12%\n\nline one\nline two"
    )


def test_entities_are_unescaped_and_whitespace_collapsed() -> None:
    assert html_to_text("<p>Fish&nbsp;&amp;&#32;chips &eacute;t&#233;\t\n &lt;3</p>") == "Fish & chips été <3"


def test_inline_elements_do_not_add_spaces() -> None:
    assert html_to_text("<p>un<b>break</b>able, two <i>words</i></p>") == "unbreakable, two words"


def test_pre_keeps_its_lines() -> None:
    assert html_to_text("<p>code:</p><pre>def f():\n    return 1\n</pre>") == "code:\n\ndef f():\nreturn 1"


@pytest.mark.parametrize("html", ["", "   ", "<html><head></head><body></body></html>", "<script>x</script>"])
def test_no_visible_text_is_empty(html: str) -> None:
    assert html_to_text(html) == ""


def test_malformed_markup_does_not_raise() -> None:
    html = "<p <<>> </div></div><b><i>text</b></i><a href='unterminated>more &bogus; &#xZZ;"
    assert "text" in html_to_text(html)
