from .roles import Capability, actor_for_request


def roles(request):
    actor = actor_for_request(request) if getattr(request, "user", None) is not None else None
    caps = actor.capabilities if actor else frozenset()
    return {
        "actor": actor,
        "can_review": Capability.REVIEW in caps,
        "can_read_all": Capability.READ_ALL_REQUESTS in caps,
        "can_read_audit": Capability.READ_AUDIT in caps,
    }
