// The MNIST tab's drawing pad: a plain canvas, drawn on with the pointer (mouse, pen or finger).
// Runs as gr.HTML's js_on_load, which gives it `element` (the component), `props` (its value) and
// `watch`. On every pointer release the canvas is sent once, as one small PNG data URL: setting
// props.value is what fires the component's change event. There are no tools to choose: the
// pointer always draws, after Clear, after Undo and after a real digit was put on the pad.
const canvas = element.querySelector("canvas");
const pen = canvas.getContext("2d");
const side = canvas.width; // canvas pixels; the page may show it smaller (a phone)
const brush = Number(canvas.dataset.brush); // stroke width in canvas pixels
let background = null; // a picture under the strokes: a real digit or an upload
let opening = false; // the digit shown when the tab opens: the first stroke starts a fresh canvas
let strokes = []; // each stroke is a list of [x, y] in canvas pixels, for Undo
let stroke = null; // the stroke being drawn

function dot([x, y]) {
  pen.beginPath();
  pen.arc(x, y, brush / 2, 0, 2 * Math.PI);
  pen.fill();
}

function segment(from, to) {
  pen.beginPath();
  pen.moveTo(from[0], from[1]);
  pen.lineTo(to[0], to[1]);
  pen.stroke();
}

function paint() {
  pen.fillStyle = "#ffffff";
  pen.fillRect(0, 0, side, side);
  if (background) pen.drawImage(background, 0, 0, side, side); // always square: the server's and paste's pictures are fitted first
  pen.fillStyle = pen.strokeStyle = "#000000";
  pen.lineWidth = brush;
  pen.lineCap = pen.lineJoin = "round";
  for (const points of strokes) {
    dot(points[0]);
    for (let i = 1; i < points.length; i++) segment(points[i - 1], points[i]);
  }
}

function send() {
  // An empty pad sends "" (the server then asks for a digit); anything else, the whole canvas.
  props.value = background || strokes.length ? canvas.toDataURL("image/png") : "";
}

function show(value) {
  // A picture the server put on the pad (a real digit, an upload), or "" to empty it.
  strokes = [];
  stroke = null;
  if (!value) {
    background = null;
    paint();
    return;
  }
  const picture = new Image();
  picture.onload = () => {
    background = picture;
    paint();
  };
  picture.src = value;
}

function at(event) {
  const box = canvas.getBoundingClientRect();
  return [((event.clientX - box.left) * side) / box.width, ((event.clientY - box.top) * side) / box.height];
}

canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId); // the release is ours even outside the canvas
  if (opening) {
    opening = false;
    background = null;
    strokes = [];
    paint();
  }
  stroke = [at(event)];
  strokes.push(stroke);
  dot(stroke[0]);
});

canvas.addEventListener("pointermove", (event) => {
  if (!stroke) return;
  const point = at(event);
  segment(stroke[stroke.length - 1], point);
  stroke.push(point);
});

function release() {
  if (!stroke) return;
  stroke = null;
  send();
}
canvas.addEventListener("pointerup", release);
canvas.addEventListener("pointercancel", release);

element.querySelector("[data-action=undo]").addEventListener("click", () => {
  if (!strokes.length) return; // a picture put on the pad is not undone: Clear removes it
  opening = false;
  strokes.pop();
  paint();
  send();
});

element.querySelector("[data-action=clear]").addEventListener("click", () => {
  opening = false;
  background = null;
  strokes = [];
  paint();
  send();
});

// A picture pasted while the pad is on screen (a screenshot of a digit) goes on the pad like an upload:
// fitted into the square, letterboxed in the colour of its own corner so that the paper stays paper.
function fitted(picture) {
  const square = document.createElement("canvas");
  square.width = square.height = side;
  const drawn = square.getContext("2d");
  drawn.drawImage(picture, 0, 0, 1, 1, 0, 0, 1, 1);
  const [r, g, b, a] = drawn.getImageData(0, 0, 1, 1).data;
  drawn.fillStyle = a < 128 ? "#ffffff" : `rgb(${r}, ${g}, ${b})`; // a transparent corner: white paper
  drawn.fillRect(0, 0, side, side);
  const scale = side / Math.max(picture.width, picture.height);
  const [w, h] = [picture.width * scale, picture.height * scale];
  drawn.drawImage(picture, (side - w) / 2, (side - h) / 2, w, h);
  return square;
}

document.addEventListener("paste", (event) => {
  if (!canvas.isConnected || canvas.offsetParent === null) return; // another tab is showing
  const target = event.target;
  if (target && (target.isContentEditable || ["INPUT", "TEXTAREA"].includes(target.tagName))) return; // text pasted into a box
  const item = [...(event.clipboardData?.items || [])].find((entry) => entry.type.startsWith("image/"));
  if (!item) return;
  event.preventDefault();
  const picture = new Image();
  picture.onload = () => {
    URL.revokeObjectURL(picture.src);
    opening = false;
    strokes = [];
    background = fitted(picture);
    paint();
    send();
  };
  picture.src = URL.createObjectURL(item.getAsFile());
});

// Only values from the server arrive here: the pad's own sends do not call back.
watch("value", () => {
  opening = false;
  show(props.value);
});

paint();
if (props.value) {
  opening = true;
  show(props.value);
}
