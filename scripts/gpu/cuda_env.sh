# Sourced by the GPU scripts: the CUDA runtime libraries a `--features cuda` build needs at run time
# (libcudart, libcublas, libcurand, libnvrtc; docs/cuda-build.md), taken from the lent machine's PyTorch
# wheels, on LD_LIBRARY_PATH; sets PY to that Python.
PY=/opt/torch/.venv/bin/python3
[ -x "$PY" ] || PY=python3
SP=$("$PY" -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null)
[ -n "$SP" ] || SP=$(ls -d /opt/torch/.venv/lib/python3*/site-packages | head -1)
LIBS=$(ls -d "$SP"/nvidia/*/lib "$SP"/nvidia/cu13/lib 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:-}"
echo "site-packages: $SP"; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
