from aml_jupyterhub.refused import group_list, refusal, refusal_html


def test_groups_by_display_name_where_known():
    names = {"g1": "Data Science", "g2": "Hub Admins"}
    assert group_list({"g1"}, names) == "Data Science"
    assert group_list({"g1", "g2", "g3"}, names) == "Data Science, Hub Admins or g3"
    assert group_list(set(), names) == ""


def test_the_page_says_who_whom_and_how_out():
    page = refusal_html("Dave Dunn", "dave@x.example", "Data Science", "it@x.example", "/hub/logout")
    assert "Dave Dunn" in page and "dave@x.example" in page and "Data Science" in page and "it@x.example" in page
    assert 'href="/hub/logout"' in page and "Sign out" in page
    text = refusal("Dave Dunn", "dave@x.example", "Data Science", "it@x.example")
    assert text.count("may not use this hub") == 1 and "sign out" in text


def test_names_are_escaped():
    page = refusal_html("<script>x</script>", "e@x", "<b>G</b>", "a&b", "/hub/logout")
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>G</b>" not in page and "a&amp;b" in page
