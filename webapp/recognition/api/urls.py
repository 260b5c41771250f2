from django.urls import path
from rest_framework.routers import DefaultRouter

from webapp.recognition.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("jobs", views.JobViewSet, basename="job")
router.register("batches", views.BatchViewSet, basename="batch")

urlpatterns = [
    path("models/", views.ModelVersionsView.as_view(), name="models"),
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    *router.urls,
]
