"""What the requests app announces to the layers above it (webhooks, ...), without importing them.

`request_status_changed` is sent inside the transaction of every status change, right after its
audit row (service.requests.services._transition and the trusted-identity insert): a receiver
that writes rows writes them in the same transaction, and one that sends anything outside must do
it after the commit (transaction.on_commit).

    sender=ErasureRequest, request=<the row, already in its new status>, previous=<old status>
"""

from django.dispatch import Signal

request_status_changed = Signal()

# Sent once an approval has committed (the reviewer's, or the auto-approve policy's), outside any
# transaction: service.unlearning queues the request and sends its job (its apps.py connects it).
# A receiver's failure is logged and leaves the approval in place.
#
#     sender=ErasureRequest, request_id=<the approved request's id>
request_approved = Signal()
