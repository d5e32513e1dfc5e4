"""Registry pages (mounted at /registry/): what is live, each unit's history, live at a time T, live history."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.registry_index, name="registry"),
    path("live/", views.registry_live, name="registry-live"),
    path("history/", views.registry_history, name="registry-history"),
    path("units/<str:unit_id>/", views.unit_detail, name="registry-unit"),
    path("units/<str:unit_id>/activate/", views.unit_action, {"action": "activate"}, name="registry-unit-activate"),
    path("units/<str:unit_id>/deactivate/", views.unit_action, {"action": "deactivate"}, name="registry-unit-deactivate"),
    path("units/<str:unit_id>/revoke/", views.unit_action, {"action": "revoke"}, name="registry-unit-revoke"),
    path("units/<str:unit_id>/rollback/", views.unit_action, {"action": "rollback"}, name="registry-unit-rollback"),
]
