from conftest import Plugin, data_in, open_request, send

CHALLENGE = {"name": "WWW-Authenticate", "value": 'Bearer realm="wsserver"'}


def answer(plugin, **request):
    response = plugin.open_request(open_request(**request))
    response["headers"] = [dict(h.__dict__) for h in response["headers"]]
    return response


def test_rejects_a_missing_or_wrong_token_with_401_and_a_challenge():
    auth = Plugin("auth")
    for request in [{}, {"uri": "/?token=nope"},
                    {"headers": [("Authorization", "Bearer nope")]}]:
        assert answer(auth, **request) == {
            "status": 401, "subprotocol": None, "headers": [CHALLENGE]}


def test_accepts_the_default_token_when_none_is_configured():
    auth = Plugin("auth")
    assert answer(auth, uri="/chat?token=wsserver-dev-token")["status"] == 101
    assert ("config-get", "auth.token") in auth.host.calls


def test_accepts_the_configured_token_in_the_query_or_a_bearer_header():
    auth = Plugin("auth")
    auth.host.config["auth.token"] = "s3cret"
    assert answer(auth, uri="/?token=s3cret")["status"] == 101
    assert answer(auth, headers=[("authorization", "Bearer s3cret")])["status"] == 101
    assert answer(auth, uri="/?token=wsserver-dev-token")["status"] == 401


def test_picks_the_first_offered_subprotocol_it_supports():
    auth = Plugin("auth")
    accepted = answer(auth, uri="/?token=wsserver-dev-token",
                      subprotocols=["mqtt", "chat.v1", "chat.v2"])
    assert accepted == {"status": 101, "subprotocol": "chat.v1", "headers": []}
    unsupported = answer(auth, uri="/?token=wsserver-dev-token", subprotocols=["mqtt"])
    assert unsupported["subprotocol"] is None


def test_echoes_after_accepting():
    auth = Plugin("auth")
    assert auth.on_events([data_in(1, "ping?", eom=False),
                           data_in(1, "!", format="continuation")]) == [send(1, "ping?!")]
