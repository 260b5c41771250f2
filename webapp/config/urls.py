from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from webapp.recognition import pages
from webapp.recognition.login import ThrottledLoginView

# /healthz, /readyz and /metrics are answered by HealthCheckMiddleware, before host checks.
urlpatterns = [
    path("api/v1/", include("webapp.recognition.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", pages.draw, name="draw"),
    path("jobs/<uuid:job_id>/", pages.job_page, name="job-page"),
    path("worksheets/", pages.worksheets, name="worksheets"),
    path("worksheets/<uuid:batch_id>/", pages.worksheets, name="worksheet-batch"),
    path("history/", pages.history, name="history"),
    path("account/token/", pages.api_token, name="api-token"),
]
