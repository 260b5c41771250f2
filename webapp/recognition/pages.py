"""The web pages: Django templates over the same job API (the JavaScript calls /api/v1/).

Views only pick a template and check ownership; reading, correcting and marking
all go through the API, so the pages and API clients see one behaviour.
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from webapp.recognition.models import Batch, Job

HISTORY_LENGTH = 100


@login_required
def draw(request):
    return render(request, "recognition/draw.html", {"active": "draw"})


@login_required
def job_page(request, job_id):
    job = get_object_or_404(Job, pk=job_id, owner=request.user)
    return render(request, "recognition/job.html", {"active": "history", "job": job})


@login_required
def worksheets(request, batch_id=None):
    batch = get_object_or_404(Batch, pk=batch_id, owner=request.user) if batch_id else None
    return render(request, "recognition/worksheets.html", {"active": "worksheets", "batch": batch})


@login_required
def history(request):
    jobs = Job.objects.filter(owner=request.user, batch__isnull=True).order_by("-queued_at")[:HISTORY_LENGTH]
    batches = Batch.objects.filter(owner=request.user).order_by("-created_at")[:HISTORY_LENGTH]
    rows = []
    for batch in batches:
        statuses = list(batch.jobs.values_list("status", flat=True))
        done = sum(1 for s in statuses if s in Job.FINISHED)
        rows.append({"batch": batch, "done": done, "total": len(statuses)})
    return render(request, "recognition/history.html", {"active": "history", "jobs": jobs, "batches": rows})


@login_required
@require_http_methods(["GET", "POST"])
def api_token(request):
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()  # a new token; the old one stops working
        return redirect("api-token")
    token, _ = Token.objects.get_or_create(user=request.user)
    return render(request, "recognition/token.html", {"active": "token", "token": token.key})
