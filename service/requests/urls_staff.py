"""Staff pages (/staff/): the review queue, a request's page and the reviewer's actions."""

from django.urls import path

from . import views_staff

urlpatterns = [
    path("", views_staff.queue, name="staff-queue"),
    path("bulk/", views_staff.bulk_decide, name="staff-bulk-decide"),
    path("requests/<uuid:request_id>/", views_staff.request_detail, name="staff-request"),
    path("requests/<uuid:request_id>/reveal/", views_staff.request_reveal, name="staff-request-reveal"),
    path("requests/<uuid:request_id>/approve/", views_staff.request_action, {"action": "approve"}, name="staff-request-approve"),
    path("requests/<uuid:request_id>/reject/", views_staff.request_action, {"action": "reject"}, name="staff-request-reject"),
    path("requests/<uuid:request_id>/cancel/", views_staff.request_action, {"action": "cancel"}, name="staff-request-cancel"),
    path("requests/<uuid:request_id>/extend/", views_staff.request_action, {"action": "extend"}, name="staff-request-extend"),
]
