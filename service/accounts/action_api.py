"""What every action endpoint does the same way: parse, resolve the actor, call one service, answer.

An action is a POST that changes one resource through one service call and answers with the
resource's representation (approve a request, revoke a unit, retry a failed job). Each operation
stays its own API class (one class per operation) with its nested `InputSerializer` and its own
`post`, decorated with its `extend_schema`, that hands its URL arguments to `act`:

    class RequestRejectApi(RequestActionApi):
        class InputSerializer(StrictSerializer):
            reason = ...

        @extend_schema(operation_id="requests_reject", ...)
        def post(self, request, request_id):
            return self.act(request, request_id=request_id)

        def perform(self, *, actor, data, request_id):
            return services.request_reject(actor=actor, request_id=request_id, reason=data["reason"])

Who may call an action at all is checked first (`required_capability`, or `allow` where it depends
on the kind of caller), before the body is validated: a caller without the right gets 403 whatever
it sent. The service checks again on the resource itself.

A family of actions (the requests', the registry's) says once how its resource is represented
(`represent`) and, for asynchronous work answered with 202 Accepted, where it lives (`location`).
"""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from service.accounts.roles import Actor, Capability, actor_for_request
from service.common.serializers import StrictSerializer


class NoBodySerializer(StrictSerializer):
    """For operations that take no parameters: an empty body or `{}`; anything else is refused."""


class ActionApi(APIView):
    InputSerializer: type[StrictSerializer] = NoBodySerializer
    # True: the work goes on asynchronously; answer 202 Accepted with a Location header (`location`).
    accepted: bool = False
    # What the caller must be allowed to do at all, checked before the body is read (`allow`).
    required_capability: Capability | None = None

    def act(self, request, **url_kwargs) -> Response:
        """Check that the caller may act (403 before anything about the body), validate the body
        (400 before anything changes), call `perform`, answer with `represent`."""
        actor = actor_for_request(request)
        self.allow(actor)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = self.perform(actor=actor, data=serializer.validated_data, **url_kwargs)
        body = self.represent(request, actor, result)
        if not self.accepted:
            return Response(body)
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": self.location(request, result)})

    def allow(self, actor: Actor) -> None:
        """Raises PermissionDenied unless `actor` may call this action at all (the service still
        decides on the resource itself). Permission comes before validation: a caller without the
        right learns nothing about what a valid body would be."""
        if self.required_capability is None:
            raise NotImplementedError(f"{type(self).__name__}: set required_capability or override allow()")
        actor.require(self.required_capability)

    def perform(self, *, actor: Actor, data: dict[str, Any], **url_kwargs) -> Any:
        """The one service call; `data` is the validated body."""
        raise NotImplementedError

    def represent(self, request, actor: Actor, result: Any) -> dict:
        raise NotImplementedError

    def location(self, request, result: Any) -> str:
        raise NotImplementedError
