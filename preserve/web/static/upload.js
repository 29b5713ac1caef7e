// The batch upload with a progress bar (XMLHttpRequest's upload progress); without script the form still works.
(function () {
  var form = document.getElementById('upload-form'), bar = document.getElementById('upload-progress'),
      status = document.getElementById('upload-status');
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var xhr = new XMLHttpRequest();
    bar.hidden = false; bar.value = 0; status.textContent = form.dataset.uploading;
    form.querySelector('button').disabled = true;
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
    xhr.onload = function () {
      if (xhr.status < 400 && xhr.responseURL) { window.location = xhr.responseURL; return; }
      document.open(); document.write(xhr.responseText); document.close();
    };
    xhr.onerror = function () { status.textContent = form.dataset.failed; form.querySelector('button').disabled = false; };
    xhr.open('POST', form.action);
    xhr.send(new FormData(form));
  });
})();
