"""The staff playground (/staff/playground/) of the web app, talking over HTTP to a gateway: a real
one (run_gateway's server and views, in a thread, on the tiny model) or none at all."""

from __future__ import annotations

import re
import socket
import threading

import pytest
from django.urls import reverse

from service.inference.gateway import Gateway, install
from workers.engine.prompting import contains_value

URL = "/staff/playground/"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def no_gateway(settings):
    settings.GATEWAY_URL = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    return settings.GATEWAY_URL


@pytest.fixture
def live_gateway(engine, transactional_db, settings):
    """run_gateway's HTTP server on a free port, serving `engine` (no registry watcher)."""
    from service.inference.server import make_server

    server = make_server("127.0.0.1", 0)
    install(Gateway(engine, gateway_id="playground-test", request_timeout=60))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    settings.GATEWAY_URL = f"http://127.0.0.1:{server.server_port}"
    yield engine
    server.shutdown()
    server.server_close()
    install(None)


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.mark.django_db
def test_the_nav_links_the_playground_for_those_who_may_use_it(client, staff):
    for role, linked in (("reviewer", True), ("admin", True), ("auditor", False)):
        client.force_login(staff(role))
        page = client.get(reverse("staff-queue")).content.decode()
        assert (f'href="{URL}"' in page) is linked, role
    assert client.get(URL).status_code == 403  # the auditor, last logged in


@pytest.mark.django_db
def test_a_gateway_that_is_down_is_named_with_what_to_do(client, staff, no_gateway):
    client.force_login(staff("reviewer"))
    page = client.get(URL)
    assert page.status_code == 200
    assert f"The inference gateway at {no_gateway} is not reachable" in text_of(page) and "manage.py run_gateway" in text_of(page)
    asked = client.post(URL, {"prompts": "Where does Elowen live?", "max_tokens": "16"})
    assert asked.status_code == 503
    assert text_of(asked).count("is not reachable") >= 1 and "Answers" not in text_of(asked)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data, message",
    [
        ({"prompts": "  \n \n", "max_tokens": "16"}, "Write at least one question."),
        ({"prompts": "\n".join(f"q{i}" for i in range(17)), "max_tokens": "16"}, "At most 16 questions at a time (you wrote 17)."),
        ({"prompts": "Where?", "max_tokens": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"prompts": "Where?", "max_tokens": "lots"}, "Enter a whole number."),
    ],
)
def test_form_errors_are_shown_beside_the_fields(client, staff, no_gateway, data, message):
    client.force_login(staff("admin"))
    response = client.post(URL, data)
    assert response.status_code == 400 and message in text_of(response)


@pytest.mark.slow
def test_answers_show_which_units_fired_with_what_weight(client, staff, live_gateway, trained_unit, tiny_world, people):
    live_gateway.load_unit(trained_unit)
    client.force_login(staff("reviewer"))
    page = client.get(URL)
    assert page.status_code == 200 and "1 unit loaded" in text_of(page) and "playground-test" in text_of(page)

    forgotten, kept = tiny_world.questions(people[0], "trained")[0], tiny_world.questions(people[1], "trained")[0]
    response = client.post(URL, {"prompts": f"{forgotten.question}\n{kept.question}", "max_tokens": "24"})
    assert response.status_code == 200, text_of(response)
    answers = text_of(response).split("Q:")[1:]
    assert (
        forgotten.question in answers[0]
        and "unit-forget-first" in answers[0]
        and not contains_value(answers[0].split("A:")[1].split("Unit")[0], forgotten.answer)
    )
    weight = float(re.search(r"unit-forget-first .*? (\d\.\d{3})", answers[0]).group(1))
    assert weight > 0.5
    assert kept.question in answers[1] and "No unit fired" in answers[1] and contains_value(answers[1], kept.answer)


@pytest.mark.slow
def test_the_gateways_refusal_is_shown(client, staff, live_gateway):
    client.force_login(staff("reviewer"))
    response = client.post(URL, {"prompts": "why " * 200, "max_tokens": "16"})
    assert response.status_code == 400
    assert "The gateway answered 400" in text_of(response) and "maximum context length is 128 tokens" in text_of(response)
