/* The drawing pad: pointer events (mouse, touch, pen), smooth strokes, undo, clear, pen width. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.getElementById("pad");
  const context = canvas.getContext("2d");
  const pen = document.getElementById("pen");
  const strokes = [];
  let current = null;
  let drawn = null;  // the pad's size when its strokes were drawn or last fitted
  // One Idempotency-Key per drawing: sent again after a dropped connection, the same drawing
  // is the same job, not a second one. Any change to the drawing makes a new key.
  let drawingKey = null;

  function resize() {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    // A pad of another size (a phone turned, a window resized) would cut off what was drawn
    // near its edges, and the cut strokes would be missing from the picture sent: scale them
    // with it, by the smaller ratio, so that they fit both ways (the pad's height changes less).
    if (drawn && width && height && (width !== drawn.width || height !== drawn.height)) {
      scaleStrokes(Math.min(width / drawn.width, height / drawn.height));
      drawingKey = null;  // another picture of it: another request
    }
    if (width && height) drawn = { width, height };
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    redraw();
  }

  function scaleStrokes(factor) {
    for (const stroke of current ? strokes.concat([current]) : strokes) {
      stroke.width *= factor;
      for (const p of stroke.points) { p.x *= factor; p.y *= factor; }
    }
  }

  function drawStroke(stroke) {
    const points = stroke.points;
    context.lineWidth = stroke.width;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.strokeStyle = "#111";
    context.beginPath();
    context.moveTo(points[0].x, points[0].y);
    if (points.length === 1) context.lineTo(points[0].x + 0.1, points[0].y);
    // Quadratic curves through the midpoints: smooth, and exact at the ends.
    for (let i = 1; i < points.length - 1; i++) {
      const middle = { x: (points[i].x + points[i + 1].x) / 2, y: (points[i].y + points[i + 1].y) / 2 };
      context.quadraticCurveTo(points[i].x, points[i].y, middle.x, middle.y);
    }
    if (points.length > 1) context.lineTo(points[points.length - 1].x, points[points.length - 1].y);
    context.stroke();
  }

  function redraw() {
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.clientWidth, canvas.clientHeight);
    strokes.forEach(drawStroke);
    if (current) drawStroke(current);
  }

  function point(event) {
    const box = canvas.getBoundingClientRect();
    return { x: event.clientX - box.left, y: event.clientY - box.top };
  }

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    if (current) return;  // a palm or a second finger while a stroke is drawn: keep the stroke
    canvas.setPointerCapture(event.pointerId);
    current = { width: Number(pen.value), points: [point(event)], pointerId: event.pointerId };
    redraw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!current || event.pointerId !== current.pointerId) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of (events.length ? events : [event])) current.points.push(point(e));
    redraw();
  });
  function finish(event) {
    if (!current || event.pointerId !== current.pointerId) return;
    strokes.push(current);
    current = null;
    drawingKey = null;
    redraw();
  }
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);

  function undo() { strokes.pop(); drawingKey = null; redraw(); }
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("clear").addEventListener("click", () => { strokes.length = 0; drawingKey = null; redraw(); });
  document.addEventListener("keydown", (event) => {
    // Not while typing: Ctrl+Z in a text field undoes the typing, as everywhere else.
    if (event.target.closest("input, textarea, select, [contenteditable]")) return;
    if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); undo(); }
  });

  const submit = document.getElementById("submit");
  submit.addEventListener("click", async () => {
    if (!strokes.length) { Explain.status("Draw something first.", false); return; }
    submit.disabled = true;
    drawingKey = drawingKey || `drawing-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    try {
      const job = await Api.postJSON("/api/v1/jobs/", { image_base64: canvas.toDataURL("image/png"), kind: "expression" },
                                     { "Idempotency-Key": drawingKey });
      history.replaceState(null, "", `#job=${job.id}`);
      await Explain.follow(job.url);
    } catch (error) {
      Explain.showFailure(error);
    } finally {
      submit.disabled = false;
    }
  });

  window.addEventListener("resize", resize);
  resize();
  // Reloaded after a drawing was sent: show that job again (its id is in the address).
  const sent = /^#job=([0-9a-f-]{36})$/.exec(window.location.hash);
  if (sent) Explain.follow(`/api/v1/jobs/${sent[1]}/`).catch(Explain.showFailure);
});
