from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from service.common.views import favicon

urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("", include("service.requests.urls_public")),
    path("staff/playground/", include("service.inference.urls")),
    path("staff/", include("service.requests.urls_staff")),
    path("staff/", include("service.unlearning.urls")),
    path("staff/", include("service.dossier.urls")),
    path("audit/", include("service.audit.urls")),
    path("registry/", include("adapters_store.urls")),
    path("reports/", include("service.reports.urls")),
    path("api/v1/", include("service.requests.urls_api")),
    path("api/v1/", include("service.unlearning.urls_api")),
    path("api/v1/", include("service.dossier.urls_api")),
    path("api/v1/registry/", include("adapters_store.urls_api")),
    path("api/v1/reports/", include("service.reports.urls_api")),
    path("api/v1/audit/", include("service.audit.urls_api")),
    path("api/v1/webhooks/", include("service.webhooks.urls_api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file (script-src 'self'); Swagger UI itself sets
    # inline styles, so this one page allows them (scripts stay strict).
    path("api/docs/", csp_update({"style-src": ["'unsafe-inline'"]})(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="api-docs"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

handler400 = "service.common.views.bad_request"
handler403 = "service.common.views.permission_denied"
handler404 = "service.common.views.not_found"
handler500 = "service.common.views.server_error"
