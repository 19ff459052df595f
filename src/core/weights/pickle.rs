//! A small unpickler for the `data.pkl` inside PyTorch checkpoints, written so that loading a
//! file can never run code.
//!
//! Python's `pickle` is a stack machine whose `GLOBAL`/`STACK_GLOBAL` opcodes import any
//! callable and whose `REDUCE`/`NEWOBJ`/`BUILD` opcodes call it: `torch.load(weights_only=False)`
//! on an untrusted file is remote code execution. This reader never imports or calls anything.
//! Every global is checked against an allowlist the moment it is named, and anything not on it
//! is refused with [`PickleError::Unsafe`] (marked as code execution for the usual gadgets:
//! `os.system`, `posix.system`, `subprocess.Popen`, `builtins.eval`/`exec`/`getattr`/…).
//! `REDUCE` on an allowlisted global only builds inert data:
//!
//! - `collections.OrderedDict`/`defaultdict`/`Counter` and Lightning's `AttributeDict` → dict;
//!   `builtins.set`/`frozenset` → set; `builtins.bytearray`, `_codecs.encode` → bytes;
//! - `torch._utils._rebuild_tensor`/`_v2`/`_v3`, `_rebuild_parameter`,
//!   `_rebuild_parameter_with_state`, `torch._tensor._rebuild_from_type_v2`,
//!   `torch.nn.parameter.Parameter`/`Buffer` → a [`TensorRef`] (storage key, dtype, offset,
//!   size, stride; the bytes are read later by the zip layer);
//! - `torch.<Name>Storage`, `torch.storage.UntypedStorage` (persistent ids), `torch.<dtype>`,
//!   `torch.device`, `torch.Size`;
//! - inert classes kept as [`Object::Opaque`] (class name, arguments and state, never
//!   interpreted): `argparse.Namespace`, `pathlib` paths, the numpy array/scalar/dtype
//!   reconstructors (`numpy.core.multiarray._reconstruct`/`scalar`, `numpy.ndarray`,
//!   `numpy.dtype`, `numpy.dtypes.*DType`; Lightning callback state holds them), the omegaconf
//!   containers and nodes (`DictConfig`, `ListConfig`, `ContainerMetadata`, `Metadata`,
//!   `AnyNode`, …; Lightning `hyper_parameters`), `typing.Any`, and the plain builtin types
//!   (`builtins.dict`, `list`, `int`, `float`, `str`, `bool`, `tuple`, `bytes`, `complex`,
//!   `slice`) that omegaconf metadata refers to.
//!
//! The reader is built for hostile input (see the `pickle` fuzz target): every declared length
//! is checked against the bytes that remain before anything is allocated, and the stack, memo,
//! mark stack and object count are bounded by [`Limits`]. Values are a graph: containers live in
//! an arena and are shared by id, so memo references keep Python's aliasing (a dict stored in
//! the memo and filled afterwards is the same dict when fetched back) without copying.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// Bounds on what a pickle can make the reader allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest pickle accepted, in bytes.
    pub max_input: usize,
    /// Deepest value stack.
    pub max_stack: usize,
    /// Deepest stack of `MARK`s.
    pub max_marks: usize,
    /// Most memo entries.
    pub max_memo: usize,
    /// Most containers and other objects built.
    pub max_objects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input: 256 << 20,
            max_stack: 1 << 20,
            max_marks: 1 << 16,
            max_memo: 1 << 23,
            max_objects: 1 << 24,
        }
    }
}

/// Why a pickle was not read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PickleError {
    /// The data ends before `STOP`, or a length runs past the end.
    #[error("the pickle ends at byte {at}, in the middle of {what}")]
    Truncated { at: usize, what: &'static str },
    /// A global that is not on the allowlist: loading the file with Python would call it.
    #[error("the pickle asks to call {global} ({})", unsafe_reason(*code_execution))]
    Unsafe { global: String, code_execution: bool },
    /// An opcode this reader does not implement (none that `torch.save` writes).
    #[error("unsupported pickle opcode 0x{opcode:02x} ({name}) at byte {at}")]
    UnsupportedOpcode { opcode: u8, name: &'static str, at: usize },
    /// Valid pickle that asks for something this reader does not build.
    #[error("unsupported pickle content at byte {at}: {what}")]
    Unsupported { at: usize, what: String },
    /// Not a valid pickle.
    #[error("malformed pickle at byte {at}: {what}")]
    Malformed { at: usize, what: String },
    /// A safety bound of [`Limits`] was reached.
    #[error("the pickle exceeds a safety limit at byte {at}: {what}")]
    Limit { at: usize, what: String },
}

fn unsafe_reason(code_execution: bool) -> &'static str {
    if code_execution {
        "code execution"
    } else {
        "not on the allowlist of inert data types"
    }
}

/// Index of an [`Object`] in [`Pickle::objects`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjId(pub u32);

/// A value on the unpickler's stack: a scalar, a string, or a reference to an object.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for `i64`, as little-endian two's complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Obj(ObjId),
}

/// Element types of torch storages and tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TorchDtype {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    U16,
    U32,
    U64,
    F8E4M3Fn,
    F8E5M2,
    F8E4M3Fnuz,
    F8E5M2Fnuz,
    F8E8M0Fnu,
    C32,
    C64,
    C128,
}

impl TorchDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        use TorchDtype::*;
        match self {
            I8 | U8 | Bool | F8E4M3Fn | F8E5M2 | F8E4M3Fnuz | F8E5M2Fnuz | F8E8M0Fnu => 1,
            F16 | BF16 | I16 | U16 => 2,
            F32 | I32 | U32 | C32 => 4,
            F64 | I64 | U64 | C64 => 8,
            C128 => 16,
        }
    }

    /// The name torch gives it (`torch.float32` → `float32`).
    pub fn name(self) -> &'static str {
        use TorchDtype::*;
        match self {
            F32 => "float32",
            F64 => "float64",
            F16 => "float16",
            BF16 => "bfloat16",
            I64 => "int64",
            I32 => "int32",
            I16 => "int16",
            I8 => "int8",
            U8 => "uint8",
            Bool => "bool",
            U16 => "uint16",
            U32 => "uint32",
            U64 => "uint64",
            F8E4M3Fn => "float8_e4m3fn",
            F8E5M2 => "float8_e5m2",
            F8E4M3Fnuz => "float8_e4m3fnuz",
            F8E5M2Fnuz => "float8_e5m2fnuz",
            F8E8M0Fnu => "float8_e8m0fnu",
            C32 => "complex32",
            C64 => "complex64",
            C128 => "complex128",
        }
    }

    /// From a `torch.<name>` dtype attribute.
    fn from_attr(name: &str) -> Option<Self> {
        use TorchDtype::*;
        Some(match name {
            "float32" | "float" => F32,
            "float64" | "double" => F64,
            "float16" | "half" => F16,
            "bfloat16" => BF16,
            "int64" | "long" => I64,
            "int32" | "int" => I32,
            "int16" | "short" => I16,
            "int8" => I8,
            "uint8" => U8,
            "bool" => Bool,
            "uint16" => U16,
            "uint32" => U32,
            "uint64" => U64,
            "float8_e4m3fn" => F8E4M3Fn,
            "float8_e5m2" => F8E5M2,
            "float8_e4m3fnuz" => F8E4M3Fnuz,
            "float8_e5m2fnuz" => F8E5M2Fnuz,
            "float8_e8m0fnu" => F8E8M0Fnu,
            "complex32" | "chalf" => C32,
            "complex64" | "cfloat" => C64,
            "complex128" | "cdouble" => C128,
            _ => return None,
        })
    }

    /// From a legacy typed storage class (`torch.FloatStorage` → `Float`).
    fn from_storage_class(name: &str) -> Option<Self> {
        use TorchDtype::*;
        Some(match name.strip_suffix("Storage")? {
            "Float" => F32,
            "Double" => F64,
            "Half" => F16,
            "BFloat16" => BF16,
            "Long" => I64,
            "Int" => I32,
            "Short" => I16,
            "Char" => I8,
            "Byte" => U8,
            "Bool" => Bool,
            "ComplexHalf" => C32,
            "ComplexFloat" => C64,
            "ComplexDouble" => C128,
            _ => return None,
        })
    }
}

impl fmt::Display for TorchDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which `torch._utils` function rebuilds a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// `_rebuild_tensor(storage, offset, size, stride)`
    V1,
    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`
    V2,
    /// `_rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])`
    V3,
}

/// An allowlisted global: what the pickle may name and "call".
#[derive(Debug, Clone, PartialEq)]
pub enum Global {
    /// `collections.OrderedDict` and other dict types.
    Dict,
    /// `builtins.set` / `frozenset`.
    Set,
    /// `builtins.bytearray`.
    Bytearray,
    /// `_codecs.encode` (protocol 2 pickles `bytes` as `encode(str, "latin1")`).
    CodecsEncode,
    RebuildTensor(Rebuild),
    /// `_rebuild_parameter` / `_rebuild_parameter_with_state`: the tensor is its first argument.
    RebuildParameter,
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`.
    RebuildFromType,
    /// `torch.nn.parameter.Parameter` / `Buffer` (tensor subclasses wrapping their first argument).
    TensorWrapper,
    /// `torch.Tensor`.
    TensorType,
    /// A storage class in a persistent id; `None` for `torch.storage.UntypedStorage`.
    StorageType(Option<TorchDtype>),
    /// `torch.float32` and friends.
    Dtype(TorchDtype),
    /// `torch.device`.
    Device,
    /// `torch.Size`.
    Size,
    /// An inert class kept as an opaque object, by its full name.
    Inert(Rc<str>),
}

/// Where a tensor's bytes live: a persistent id `('storage', type, key, location, numel)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// Record name under `<archive>/data/`.
    pub key: Rc<str>,
    /// `None` for an untyped (byte) storage.
    pub dtype: Option<TorchDtype>,
    /// Device it was saved from (`cpu`, `cuda:0`); everything is loaded to the CPU.
    pub location: Rc<str>,
    /// Elements of `dtype` (bytes for an untyped storage).
    pub numel: u64,
}

impl StorageRef {
    /// Declared size in bytes, if it fits in `u64`.
    pub fn nbytes(&self) -> Option<u64> {
        self.numel.checked_mul(self.dtype.map_or(1, |d| d.size() as u64))
    }
}

/// A strided view of a storage, as `torch.Tensor.set_(storage, offset, size, stride)` makes.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub dtype: TorchDtype,
    /// In elements of `dtype`.
    pub offset: u64,
    pub size: Vec<u64>,
    /// In elements of `dtype`.
    pub stride: Vec<u64>,
}

/// A container or other built object.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Items in insertion order; a repeated key means the later one wins, as in Python.
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
    Device(Rc<str>),
    /// An instance of an allowlisted inert class: never interpreted.
    Opaque {
        class: Rc<str>,
        args: Vec<Value>,
        state: Option<Value>,
    },
}

impl Object {
    /// A short name of its kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Tuple(_) => "tuple",
            Object::List(_) => "list",
            Object::Dict(_) => "dict",
            Object::Set(_) => "set",
            Object::Global(_) => "global",
            Object::Storage(_) => "storage",
            Object::Tensor(_) => "tensor",
            Object::Device(_) => "device",
            Object::Opaque { .. } => "object",
        }
    }
}

/// A parsed pickle: the object arena and the value `STOP` returned.
#[derive(Debug, Clone)]
pub struct Pickle {
    pub objects: Vec<Object>,
    pub root: Value,
    /// The `PROTO` opcode's protocol (0 when absent).
    pub protocol: u8,
}

impl Pickle {
    /// The object a value refers to, if it is a reference.
    pub fn object(&self, value: &Value) -> Option<&Object> {
        match value {
            Value::Obj(id) => self.objects.get(id.0 as usize),
            _ => None,
        }
    }

    /// The items of a dict value.
    pub fn dict(&self, value: &Value) -> Option<&[(Value, Value)]> {
        match self.object(value)? {
            Object::Dict(items) => Some(items),
            _ => None,
        }
    }

    /// The value stored under the string key `key` of a dict value (the last one, as in Python).
    pub fn dict_get<'a>(&'a self, value: &Value, key: &str) -> Option<&'a Value> {
        self.dict(value)?
            .iter()
            .rev()
            .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
            .map(|(_, v)| v)
    }

    /// The tensor a value refers to.
    pub fn tensor(&self, value: &Value) -> Option<&TensorRef> {
        match self.object(value)? {
            Object::Tensor(t) => Some(t),
            _ => None,
        }
    }
}

/// Parse a pickle with the default [`Limits`].
pub fn parse(data: &[u8]) -> Result<Pickle, PickleError> {
    parse_with_limits(data, Limits::default())
}

/// Parse a pickle, never running anything it names, within `limits`.
pub fn parse_with_limits(data: &[u8], limits: Limits) -> Result<Pickle, PickleError> {
    if data.len() > limits.max_input {
        return Err(PickleError::Limit {
            at: 0,
            what: format!(
                "{} bytes of pickle, more than the {} accepted",
                data.len(),
                limits.max_input
            ),
        });
    }
    Machine {
        data,
        pos: 0,
        op_at: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        objects: Vec::new(),
        limits,
        protocol: 0,
        // Values copied out of shared containers (call arguments, dicts built from dicts, tensor
        // sizes): proportional to the input, so memo references cannot multiply memory.
        copy_budget: data.len().saturating_mul(2).saturating_add(1 << 20),
    }
    .run()
}

/// Resolve `module.name` against the allowlist.
pub fn resolve_global(module: &str, name: &str) -> Result<Global, PickleError> {
    // Python 2 names that protocol 2 writes for Python 3 objects.
    let module = match module {
        "__builtin__" | "exceptions" => "builtins",
        "copy_reg" => "copyreg",
        m => m,
    };
    let refuse = || PickleError::Unsafe {
        global: format!("{module}.{name}"),
        code_execution: runs_code(module, name),
    };
    let inert = || Global::Inert(Rc::from(format!("{module}.{name}")));
    if module == "torch"
        && let Some(d) = TorchDtype::from_attr(name)
    {
        return Ok(Global::Dtype(d));
    }
    Ok(match (module, name) {
        ("collections", "OrderedDict" | "defaultdict" | "Counter") => Global::Dict,
        (
            "lightning.fabric.utilities.data"
            | "lightning_fabric.utilities.data"
            | "lightning.pytorch.utilities.parsing"
            | "pytorch_lightning.utilities.parsing",
            "AttributeDict",
        ) => Global::Dict,
        ("builtins", "set" | "frozenset") => Global::Set,
        ("builtins", "bytearray") => Global::Bytearray,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor(Rebuild::V1),
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor(Rebuild::V2),
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensor(Rebuild::V3),
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => Global::RebuildParameter,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromType,
        ("torch.nn.parameter", "Parameter" | "Buffer") => Global::TensorWrapper,
        ("torch" | "torch._tensor", "Tensor") => Global::TensorType,
        ("torch", "device") => Global::Device,
        ("torch", "Size") => Global::Size,
        ("torch.storage" | "torch", "UntypedStorage") => Global::StorageType(None),
        ("torch" | "torch.cuda", n) if n.ends_with("Storage") => match TorchDtype::from_storage_class(n) {
            Some(d) => Global::StorageType(Some(d)),
            None => {
                return Err(PickleError::Unsupported {
                    at: 0,
                    what: format!("storage type {module}.{name} (quantized or unknown)"),
                });
            }
        },
        ("argparse", "Namespace")
        | ("pathlib", "Path" | "PosixPath" | "WindowsPath" | "PurePath" | "PurePosixPath" | "PureWindowsPath")
        | ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct" | "scalar")
        | ("numpy", "ndarray" | "dtype")
        | ("omegaconf.dictconfig", "DictConfig")
        | ("omegaconf.listconfig", "ListConfig")
        | ("omegaconf.base", "ContainerMetadata" | "Metadata")
        | (
            "omegaconf.nodes",
            "AnyNode" | "StringNode" | "IntegerNode" | "FloatNode" | "BooleanNode" | "BytesNode" | "PathNode",
        )
        | ("typing", "Any")
        | ("builtins", "dict" | "list" | "int" | "float" | "str" | "bool" | "tuple" | "bytes" | "complex" | "slice") => {
            inert()
        }
        ("numpy.dtypes", n) if n.ends_with("DType") && n.chars().all(|c| c.is_ascii_alphanumeric()) => inert(),
        _ => return Err(refuse()),
    })
}

/// Whether loading `module.name` with Python's pickle is a known way to run code or touch the
/// system (only changes the wording: every global off the allowlist is refused).
fn runs_code(module: &str, name: &str) -> bool {
    const MODULES: &[&str] = &[
        "os",
        "posix",
        "nt",
        "posixpath",
        "ntpath",
        "subprocess",
        "_posixsubprocess",
        "sys",
        "shutil",
        "socket",
        "importlib",
        "imp",
        "runpy",
        "pty",
        "ctypes",
        "code",
        "codeop",
        "commands",
        "webbrowser",
        "multiprocessing",
        "pickle",
        "_pickle",
        "cPickle",
        "marshal",
        "dill",
        "cloudpickle",
        "joblib",
        "types",
        "asyncio",
        "platform",
        "pdb",
        "bdb",
        "timeit",
        "cProfile",
        "profile",
        "trace",
        "distutils",
        "setuptools",
        "pip",
        "signal",
        "io",
        "_io",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "telnetlib",
        "requests",
        "threading",
        "_thread",
        "tempfile",
        "glob",
        "zipimport",
        "site",
        "sysconfig",
    ];
    let root = module.split('.').next().unwrap_or(module);
    if MODULES.contains(&root) {
        return true;
    }
    match module {
        "builtins" => matches!(
            name,
            "eval"
                | "exec"
                | "execfile"
                | "compile"
                | "open"
                | "file"
                | "getattr"
                | "setattr"
                | "delattr"
                | "__import__"
                | "globals"
                | "locals"
                | "vars"
                | "input"
                | "raw_input"
                | "breakpoint"
                | "help"
                | "exit"
                | "quit"
                | "apply"
                | "reload"
                | "type"
                | "super"
                | "print"
                | "memoryview"
                | "classmethod"
                | "staticmethod"
                | "property"
        ),
        "operator" => matches!(name, "attrgetter" | "methodcaller" | "call"),
        "functools" => matches!(name, "partial" | "reduce" | "partialmethod"),
        "torch" => matches!(name, "load" | "compile" | "hub" | "jit" | "ops" | "classes"),
        _ => [
            "torch.hub",
            "torch.jit",
            "torch._C",
            "torch.ops",
            "torch.package",
            "torch.utils.cpp_extension",
            "torch.serialization",
            "numpy.testing",
            "numpy.f2py",
            "numpy.distutils",
            "numpy.lib.format",
        ]
        .iter()
        .any(|p| {
            module
                .strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        }),
    }
}

/// Names of opcodes this reader refuses, for messages.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'P' => "PERSID",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}

/// The text of a protocol 0 `STRING` argument: a quoted Python 2 string literal.
fn unquote(line: &[u8]) -> Option<Vec<u8>> {
    let q = *line.first()?;
    if !(q == b'\'' || q == b'"') || line.len() < 2 || line[line.len() - 1] != q {
        return None;
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        i += 1;
        if b != b'\\' || i >= body.len() {
            out.push(b);
            continue;
        }
        let e = body[i];
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'x' => {
                let hex = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// The text of a protocol 0 `UNICODE` argument (`raw-unicode-escape`: latin-1 plus `\uXXXX`).
fn raw_unicode_escape(line: &[u8]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let width = match (line[i], line.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            _ => 0,
        };
        let decoded = (width > 0)
            .then(|| line.get(i + 2..i + 2 + width))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match decoded {
            Some(c) => {
                out.push(c);
                i += 2 + width;
            }
            None => {
                out.push(line[i] as char);
                i += 1;
            }
        }
    }
    out
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the opcode being run starts, for messages.
    op_at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    objects: Vec<Object>,
    limits: Limits,
    protocol: u8,
    copy_budget: usize,
}

type R<T> = Result<T, PickleError>;

impl<'a> Machine<'a> {
    fn malformed<T>(&self, what: impl Into<String>) -> R<T> {
        Err(PickleError::Malformed {
            at: self.op_at,
            what: what.into(),
        })
    }

    fn unsupported<T>(&self, what: impl Into<String>) -> R<T> {
        Err(PickleError::Unsupported {
            at: self.op_at,
            what: what.into(),
        })
    }

    fn take(&mut self, n: usize, what: &'static str) -> R<&'a [u8]> {
        let data: &'a [u8] = self.data;
        match data.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(PickleError::Truncated { at: data.len(), what }),
        }
    }

    fn u8(&mut self, what: &'static str) -> R<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> R<[u8; N]> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &'static str) -> R<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64_len(&mut self, what: &'static str) -> R<usize> {
        let n = u64::from_le_bytes(self.array(what)?);
        // Longer than what remains is truncation; `take` reports it without allocating.
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn line(&mut self, what: &'static str) -> R<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = data.get(self.pos..).unwrap_or(&[]);
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None => Err(PickleError::Truncated { at: data.len(), what }),
        }
    }

    /// Account for copying `n` values out of an existing object.
    fn charge(&mut self, n: usize) -> R<()> {
        match self.copy_budget.checked_sub(n) {
            Some(left) => {
                self.copy_budget = left;
                Ok(())
            }
            None => Err(PickleError::Limit {
                at: self.op_at,
                what: "shared values are copied more often than the input's size allows".into(),
            }),
        }
    }

    fn push(&mut self, v: Value) -> R<()> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(PickleError::Limit {
                at: self.op_at,
                what: format!("value stack deeper than {}", self.limits.max_stack),
            });
        }
        self.stack.push(v);
        Ok(())
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> R<Value> {
        if self.stack.len() <= self.floor() {
            return self.malformed("stack underflow");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.malformed("stack underflow"),
        }
    }

    fn top(&self) -> R<&Value> {
        if self.stack.len() <= self.floor() {
            return self.malformed("stack underflow");
        }
        match self.stack.last() {
            Some(v) => Ok(v),
            None => self.malformed("stack underflow"),
        }
    }

    fn pop_mark(&mut self) -> R<Vec<Value>> {
        match self.marks.pop() {
            Some(mark) if mark <= self.stack.len() => Ok(self.stack.split_off(mark)),
            _ => self.malformed("no MARK to pop to"),
        }
    }

    fn alloc(&mut self, obj: Object) -> R<Value> {
        if self.objects.len() >= self.limits.max_objects {
            return Err(PickleError::Limit {
                at: self.op_at,
                what: format!("more than {} objects", self.limits.max_objects),
            });
        }
        let id = ObjId(self.objects.len() as u32);
        self.objects.push(obj);
        Ok(Value::Obj(id))
    }

    fn push_obj(&mut self, obj: Object) -> R<()> {
        let v = self.alloc(obj)?;
        self.push(v)
    }

    fn object(&self, v: &Value) -> Option<&Object> {
        match v {
            Value::Obj(id) => self.objects.get(id.0 as usize),
            _ => None,
        }
    }

    /// The object a stack value refers to, mutably.
    fn object_mut(&mut self, v: &Value) -> Option<&mut Object> {
        match v {
            Value::Obj(id) => self.objects.get_mut(id.0 as usize),
            _ => None,
        }
    }

    fn memo_put(&mut self, key: u32) -> R<()> {
        let v = self.top()?.clone();
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&key) {
            return Err(PickleError::Limit {
                at: self.op_at,
                what: format!("more than {} memo entries", self.limits.max_memo),
            });
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> R<()> {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.push(v)
            }
            None => self.malformed(format!("memo key {key} was never stored")),
        }
    }

    fn int_from_le(&self, bytes: &[u8]) -> Value {
        if bytes.is_empty() {
            return Value::Int(0);
        }
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let fill = if negative { 0xff } else { 0 };
        // Drop redundant sign-extension bytes, then see whether it fits in i64.
        let mut n = bytes.len();
        while n > 1 && bytes[n - 1] == fill && (bytes[n - 2] & 0x80 != 0) == negative {
            n -= 1;
        }
        if n <= 8 {
            let mut buf = [fill; 8];
            buf[..n].copy_from_slice(&bytes[..n]);
            Value::Int(i64::from_le_bytes(buf))
        } else {
            Value::BigInt(Rc::from(&bytes[..n]))
        }
    }

    fn str_value(bytes: &[u8]) -> Value {
        Value::Str(Rc::from(String::from_utf8_lossy(bytes).as_ref()))
    }

    fn latin1(bytes: &[u8]) -> Value {
        Value::Str(Rc::from(bytes.iter().map(|&b| b as char).collect::<String>()))
    }

    fn resolve(&self, module: &str, name: &str) -> R<Global> {
        resolve_global(module, name).map_err(|e| match e {
            PickleError::Unsupported { what, .. } => PickleError::Unsupported { at: self.op_at, what },
            other => other,
        })
    }

    fn global(&mut self, module: &str, name: &str) -> R<()> {
        let g = self.resolve(module, name)?;
        self.push_obj(Object::Global(g))
    }

    fn run(mut self) -> R<Pickle> {
        loop {
            self.op_at = self.pos;
            let op = self.u8("an opcode")?;
            match op {
                // PROTO
                0x80 => {
                    let p = self.u8("PROTO")?;
                    if p > 5 {
                        return self.unsupported(format!("pickle protocol {p}"));
                    }
                    self.protocol = p;
                }
                // FRAME: a length prefix for buffering; the contents are ordinary opcodes.
                0x95 => {
                    let n = self.u64_len("FRAME")?;
                    if n > self.data.len() - self.pos {
                        return Err(PickleError::Truncated {
                            at: self.data.len(),
                            what: "a FRAME",
                        });
                    }
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(Pickle {
                        objects: self.objects,
                        root,
                        protocol: self.protocol,
                    });
                }
                b'(' => {
                    if self.marks.len() >= self.limits.max_marks {
                        return Err(PickleError::Limit {
                            at: self.op_at,
                            what: format!("more than {} nested MARKs", self.limits.max_marks),
                        });
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                // Scalars.
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.array("BININT")?);
                    self.push(Value::Int(v.into()))?
                }
                b'K' => {
                    let v = self.u8("BININT1")?;
                    self.push(Value::Int(v.into()))?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array("BININT2")?);
                    self.push(Value::Int(v.into()))?
                }
                0x8a => {
                    let n = self.u8("LONG1")? as usize;
                    let bytes = self.take(n, "LONG1")?;
                    let v = self.int_from_le(bytes);
                    self.push(v)?
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.array("LONG4")?);
                    let Ok(n) = usize::try_from(n) else {
                        return self.malformed("LONG4 with a negative length");
                    };
                    let bytes = self.take(n, "LONG4")?;
                    let v = self.int_from_le(bytes);
                    self.push(v)?
                }
                b'I' => {
                    let line = self.line("INT")?;
                    let v = match line {
                        b"01" => Value::Bool(true),
                        b"00" => Value::Bool(false),
                        _ => match std::str::from_utf8(line)
                            .ok()
                            .and_then(|s| s.trim().parse::<i64>().ok())
                        {
                            Some(v) => Value::Int(v),
                            None => return self.unsupported("INT that does not fit in 64 bits"),
                        },
                    };
                    self.push(v)?
                }
                b'L' => {
                    let line = self.line("LONG")?;
                    let text = std::str::from_utf8(line).unwrap_or("");
                    match text.trim_end_matches('L').parse::<i64>() {
                        Ok(v) => self.push(Value::Int(v))?,
                        Err(_) => return self.unsupported("LONG that does not fit in 64 bits"),
                    }
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array("BINFLOAT")?);
                    self.push(Value::Float(v))?
                }
                b'F' => {
                    let line = self.line("FLOAT")?;
                    match std::str::from_utf8(line)
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok())
                    {
                        Some(v) => self.push(Value::Float(v))?,
                        None => return self.malformed("FLOAT that is not a number"),
                    }
                }
                b'S' => {
                    let line = self.line("STRING")?;
                    match unquote(line) {
                        Some(bytes) => self.push(Self::latin1(&bytes))?,
                        None => return self.malformed("STRING that is not a quoted string"),
                    }
                }
                b'V' => {
                    let line = self.line("UNICODE")?;
                    self.push(Value::Str(Rc::from(raw_unicode_escape(line).as_str())))?
                }
                // Strings and bytes.
                b'X' => {
                    let n = self.u32("BINUNICODE")? as usize;
                    let bytes = self.take(n, "BINUNICODE")?;
                    self.push(Self::str_value(bytes))?
                }
                0x8c => {
                    let n = self.u8("SHORT_BINUNICODE")? as usize;
                    let bytes = self.take(n, "SHORT_BINUNICODE")?;
                    self.push(Self::str_value(bytes))?
                }
                0x8d => {
                    let n = self.u64_len("BINUNICODE8")?;
                    let bytes = self.take(n, "BINUNICODE8")?;
                    self.push(Self::str_value(bytes))?
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.array("BINSTRING")?);
                    let Ok(n) = usize::try_from(n) else {
                        return self.malformed("BINSTRING with a negative length");
                    };
                    let bytes = self.take(n, "BINSTRING")?;
                    self.push(Self::latin1(bytes))?
                }
                b'U' => {
                    let n = self.u8("SHORT_BINSTRING")? as usize;
                    let bytes = self.take(n, "SHORT_BINSTRING")?;
                    self.push(Self::latin1(bytes))?
                }
                b'B' => {
                    let n = self.u32("BINBYTES")? as usize;
                    let bytes = self.take(n, "BINBYTES")?;
                    self.push(Value::Bytes(Rc::from(bytes)))?
                }
                b'C' => {
                    let n = self.u8("SHORT_BINBYTES")? as usize;
                    let bytes = self.take(n, "SHORT_BINBYTES")?;
                    self.push(Value::Bytes(Rc::from(bytes)))?
                }
                0x8e | 0x96 => {
                    let n = self.u64_len("BINBYTES8")?;
                    let bytes = self.take(n, "BINBYTES8")?;
                    self.push(Value::Bytes(Rc::from(bytes)))?
                }
                // Containers.
                b')' => self.push_obj(Object::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Object::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < self.floor() + n {
                        return self.malformed("stack underflow");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_obj(Object::Tuple(items))?
                }
                b']' => self.push_obj(Object::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Object::List(items))?
                }
                b'}' => self.push_obj(Object::Dict(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push_obj(Object::Dict(pairs))?
                }
                0x8f => self.push_obj(Object::Set(Vec::new()))?,
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push_obj(Object::Set(items))?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend(vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend(items)?
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    match self.object_mut(&target) {
                        Some(Object::Set(set)) => set.extend(items),
                        _ => return self.unsupported("ADDITEMS on something that is not a set"),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.set_items(pairs)?
                }
                // Memo.
                b'q' => {
                    let k = self.u8("BINPUT")?;
                    self.memo_put(k.into())?
                }
                b'r' => {
                    let k = self.u32("LONG_BINPUT")?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(k)?
                }
                b'p' => {
                    let line = self.line("PUT")?;
                    match std::str::from_utf8(line).ok().and_then(|s| s.parse::<u32>().ok()) {
                        Some(k) => self.memo_put(k)?,
                        None => return self.malformed("PUT with a bad index"),
                    }
                }
                b'h' => {
                    let k = self.u8("BINGET")?;
                    self.memo_get(k.into())?
                }
                b'j' => {
                    let k = self.u32("LONG_BINGET")?;
                    self.memo_get(k)?
                }
                b'g' => {
                    let line = self.line("GET")?;
                    match std::str::from_utf8(line).ok().and_then(|s| s.parse::<u32>().ok()) {
                        Some(k) => self.memo_get(k)?,
                        None => return self.malformed("GET with a bad index"),
                    }
                }
                // Globals and calls.
                b'c' => {
                    let module = String::from_utf8_lossy(self.line("GLOBAL")?).into_owned();
                    let name = String::from_utf8_lossy(self.line("GLOBAL")?).into_owned();
                    self.global(&module, &name)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(&m, &n)?,
                        _ => return self.malformed("STACK_GLOBAL without two strings"),
                    }
                }
                b'i' => {
                    // INST: GLOBAL and a call on the arguments above the mark, in one opcode.
                    let module = String::from_utf8_lossy(self.line("INST")?).into_owned();
                    let name = String::from_utf8_lossy(self.line("INST")?).into_owned();
                    let g = self.resolve(&module, &name)?;
                    let args = self.pop_mark()?;
                    let v = self.call(&g, args)?;
                    self.push(v)?
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return self.malformed("OBJ without a class");
                    }
                    let class = items.remove(0);
                    let g = self.callable(&class)?;
                    let v = self.call(&g, items)?;
                    self.push(v)?
                }
                b'R' | 0x81 | 0x92 => {
                    if op == 0x92 {
                        self.pop()?; // NEWOBJ_EX keyword arguments
                    }
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let args = match self.object(&args) {
                        Some(Object::Tuple(items)) => items.clone(),
                        _ => return self.malformed("call arguments are not a tuple"),
                    };
                    self.charge(args.len())?;
                    let g = self.callable(&callable)?;
                    let v = self.call(&g, args)?;
                    self.push(v)?
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?.clone();
                    self.build(&target, state)?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(&pid)?;
                    self.push(v)?
                }
                _ => {
                    return Err(PickleError::UnsupportedOpcode {
                        opcode: op,
                        name: opcode_name(op),
                        at: self.op_at,
                    });
                }
            }
        }
    }

    fn pairs(&self, items: Vec<Value>) -> R<Vec<(Value, Value)>> {
        if !items.len().is_multiple_of(2) {
            return self.malformed("odd number of items for a dict");
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(pairs)
    }

    fn extend(&mut self, items: Vec<Value>) -> R<()> {
        let target = self.top()?.clone();
        match self.object_mut(&target) {
            Some(Object::List(list)) => {
                list.extend(items);
                Ok(())
            }
            Some(other) => {
                let kind = other.kind();
                self.unsupported(format!("APPEND on a {kind}"))
            }
            None => self.malformed("APPEND on a scalar"),
        }
    }

    fn set_items(&mut self, pairs: Vec<(Value, Value)>) -> R<()> {
        let target = self.top()?.clone();
        match self.object_mut(&target) {
            Some(Object::Dict(dict)) => {
                dict.extend(pairs);
                Ok(())
            }
            Some(other) => {
                let kind = other.kind();
                self.unsupported(format!("SETITEM on a {kind}"))
            }
            None => self.malformed("SETITEM on a scalar"),
        }
    }

    fn callable(&self, v: &Value) -> R<Global> {
        match self.object(v) {
            Some(Object::Global(g)) => Ok(g.clone()),
            Some(other) => self.unsupported(format!("a call on a {}", other.kind())),
            None => self.malformed("a call on a scalar"),
        }
    }

    fn int_arg(&self, v: Option<&Value>, what: &str) -> R<u64> {
        match v {
            Some(Value::Int(i)) if *i >= 0 => Ok(*i as u64),
            Some(Value::Bool(b)) => Ok(*b as u64),
            _ => self.malformed(format!("{what} is not a non-negative integer")),
        }
    }

    fn int_tuple(&mut self, v: Option<&Value>, what: &str) -> R<Vec<u64>> {
        let n = match v.and_then(|v| self.object(v)) {
            Some(Object::Tuple(items) | Object::List(items)) => items.len(),
            _ => 0,
        };
        self.charge(n)?;
        match v.and_then(|v| self.object(v)) {
            Some(Object::Tuple(items) | Object::List(items)) => {
                items.iter().map(|i| self.int_arg(Some(i), what)).collect()
            }
            _ => self.malformed(format!("{what} is not a tuple of integers")),
        }
    }

    fn rebuild_tensor(&mut self, kind: Rebuild, args: &[Value]) -> R<Object> {
        let storage = match args.first().and_then(|v| self.object(v)) {
            Some(Object::Storage(s)) => s.clone(),
            _ => return self.malformed("tensor rebuilt from something that is not a storage"),
        };
        let offset = self.int_arg(args.get(1), "storage offset")?;
        let size = self.int_tuple(args.get(2), "tensor size")?;
        let stride = self.int_tuple(args.get(3), "tensor stride")?;
        if size.len() != stride.len() {
            return self.malformed(format!(
                "tensor size has {} dims but stride {}",
                size.len(),
                stride.len()
            ));
        }
        let dtype = match kind {
            Rebuild::V3 => match args.get(6).and_then(|v| self.object(v)) {
                Some(Object::Global(Global::Dtype(d))) => *d,
                _ => return self.malformed("_rebuild_tensor_v3 without a dtype"),
            },
            Rebuild::V1 | Rebuild::V2 => match storage.dtype {
                Some(d) => d,
                None => return self.malformed("tensor on an untyped storage without a dtype"),
            },
        };
        Ok(Object::Tensor(TensorRef {
            storage,
            dtype,
            offset,
            size,
            stride,
        }))
    }

    /// What "calling" an allowlisted global builds: data only.
    fn call(&mut self, g: &Global, args: Vec<Value>) -> R<Value> {
        // Builders below copy the container in their first argument.
        let copied = match args.first().and_then(|v| self.object(v)) {
            Some(Object::Dict(items)) => 2 * items.len(),
            Some(Object::List(items) | Object::Tuple(items) | Object::Set(items)) => items.len(),
            _ => 0,
        };
        self.charge(copied)?;
        match g {
            Global::Dict => {
                let items = match args.first().and_then(|v| self.object(v)) {
                    Some(Object::Dict(items)) => items.clone(),
                    Some(Object::List(items)) => {
                        let mut pairs = Vec::new();
                        for item in items {
                            match self.object(item) {
                                Some(Object::Tuple(kv) | Object::List(kv)) if kv.len() == 2 => {
                                    pairs.push((kv[0].clone(), kv[1].clone()))
                                }
                                _ => return self.malformed("dict built from a list that is not of pairs"),
                            }
                        }
                        pairs
                    }
                    // `defaultdict(factory)`: the factory is not kept.
                    _ => Vec::new(),
                };
                self.alloc(Object::Dict(items))
            }
            Global::Set => {
                let items = match args.first().and_then(|v| self.object(v)) {
                    Some(Object::List(items) | Object::Tuple(items) | Object::Set(items)) => items.clone(),
                    None if args.is_empty() => Vec::new(),
                    _ => return self.malformed("set built from something that is not a sequence"),
                };
                self.alloc(Object::Set(items))
            }
            Global::Bytearray | Global::CodecsEncode => match (args.first(), args.get(1)) {
                (None, _) => Ok(Value::Bytes(Rc::from(&[][..]))),
                (Some(Value::Bytes(b)), _) => Ok(Value::Bytes(b.clone())),
                (Some(Value::Str(s)), encoding) => {
                    let encoding = match encoding {
                        Some(Value::Str(e)) => e.to_ascii_lowercase(),
                        _ => "utf-8".to_owned(),
                    };
                    match encoding.as_str() {
                        "latin1" | "latin-1" | "iso-8859-1" => {
                            match s.chars().map(u8::try_from).collect::<Result<Vec<u8>, _>>() {
                                Ok(bytes) => Ok(Value::Bytes(Rc::from(bytes))),
                                Err(_) => self.malformed("latin-1 text with a character above U+00FF"),
                            }
                        }
                        "utf-8" | "utf8" | "ascii" => Ok(Value::Bytes(Rc::from(s.as_bytes()))),
                        other => self.unsupported(format!("bytes encoded as {other}")),
                    }
                }
                (Some(v), _) => match self.object(v) {
                    Some(Object::List(items)) => {
                        let bytes: Option<Vec<u8>> = items
                            .iter()
                            .map(|i| match i {
                                Value::Int(n) => u8::try_from(*n).ok(),
                                _ => None,
                            })
                            .collect();
                        match bytes {
                            Some(b) => Ok(Value::Bytes(Rc::from(b))),
                            None => self.malformed("bytearray of something other than bytes"),
                        }
                    }
                    _ => self.malformed("bytes built from an unexpected value"),
                },
            },
            Global::RebuildTensor(kind) => {
                let t = self.rebuild_tensor(*kind, &args)?;
                self.alloc(t)
            }
            Global::RebuildParameter | Global::TensorWrapper => match args.first() {
                Some(v) if matches!(self.object(v), Some(Object::Tensor(_))) => Ok(v.clone()),
                _ => self.unsupported("a Parameter that does not wrap a tensor"),
            },
            Global::RebuildFromType => {
                let func = args.first().map(|f| self.callable(f)).transpose()?;
                let new_type = args.get(1).map(|t| self.callable(t)).transpose()?;
                let inner = match args.get(2).and_then(|a| self.object(a)) {
                    Some(Object::Tuple(items)) => items.clone(),
                    _ => return self.malformed("_rebuild_from_type_v2 without an argument tuple"),
                };
                self.charge(inner.len())?;
                match (func, new_type) {
                    (
                        Some(f @ (Global::RebuildTensor(_) | Global::RebuildParameter)),
                        Some(Global::TensorType | Global::TensorWrapper),
                    ) => self.call(&f, inner),
                    _ => self.unsupported("_rebuild_from_type_v2 of a tensor subclass"),
                }
            }
            Global::Device => match args.first() {
                Some(Value::Str(s)) => {
                    let name = match args.get(1) {
                        Some(Value::Int(i)) => Rc::from(format!("{s}:{i}")),
                        _ => s.clone(),
                    };
                    self.alloc(Object::Device(name))
                }
                _ => self.malformed("torch.device without a name"),
            },
            Global::Size => match args.first().and_then(|v| self.object(v)) {
                Some(Object::Tuple(items) | Object::List(items)) => {
                    let items = items.clone();
                    self.alloc(Object::Tuple(items))
                }
                None if args.is_empty() => self.alloc(Object::Tuple(Vec::new())),
                _ => self.malformed("torch.Size of something that is not a tuple"),
            },
            Global::Inert(class) => self.alloc(Object::Opaque {
                class: class.clone(),
                args,
                state: None,
            }),
            Global::TensorType | Global::StorageType(_) | Global::Dtype(_) => {
                self.unsupported("a call on a torch type (legacy serialization)")
            }
        }
    }

    fn build(&mut self, target: &Value, state: Value) -> R<()> {
        match self.object_mut(target) {
            Some(Object::Opaque { state: slot, .. }) => {
                *slot = Some(state);
                Ok(())
            }
            // An OrderedDict's `__dict__` (a state_dict's `_metadata`), tensor and container
            // attributes: not needed, dropped.
            Some(Object::Dict(_) | Object::Tensor(_) | Object::List(_) | Object::Set(_)) => Ok(()),
            Some(other) => {
                let kind = other.kind();
                self.unsupported(format!("BUILD on a {kind}"))
            }
            None => self.malformed("BUILD on a scalar"),
        }
    }

    fn persistent_load(&mut self, pid: &Value) -> R<Value> {
        let items = match self.object(pid) {
            Some(Object::Tuple(items)) => items,
            _ => return self.unsupported("a persistent id that is not a tuple"),
        };
        match items.first() {
            Some(Value::Str(s)) if &**s == "storage" => {}
            _ => return self.unsupported("a persistent id that is not a storage"),
        }
        if items.len() != 5 {
            return self.malformed(format!("storage persistent id with {} fields, not 5", items.len()));
        }
        let dtype = match self.object(&items[1]) {
            Some(Object::Global(Global::StorageType(d))) => *d,
            _ => return self.malformed("storage persistent id without a storage type"),
        };
        let key = match &items[2] {
            Value::Str(k) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => k.clone(),
            _ => return self.malformed("storage key is not a plain name"),
        };
        let location = match &items[3] {
            Value::Str(l) => l.clone(),
            _ => return self.malformed("storage location is not a string"),
        };
        let numel = self.int_arg(items.get(4), "storage size")?;
        self.alloc(Object::Storage(StorageRef {
            key,
            dtype,
            location,
            numel,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny pickle assembler for tests.
    fn global(module: &str, name: &str) -> Vec<u8> {
        format!("c{module}\n{name}\n").into_bytes()
    }

    fn unicode(s: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend_from_slice(&(s.len() as u32).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn scalars_and_containers() {
        // {'a': [1, -5, 1.5, True, None], 'b': (300, 70000)}
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
        p.extend(unicode("a"));
        p.extend([b']', b'(', b'K', 1, b'J']);
        p.extend((-5i32).to_le_bytes());
        p.push(b'G');
        p.extend(1.5f64.to_be_bytes());
        p.extend([0x88, b'N', b'e']);
        p.extend(unicode("b"));
        p.extend([b'M', 0x2c, 0x01, b'J']);
        p.extend(70000i32.to_le_bytes());
        p.extend([0x86, b'u', b'.']);
        let pk = parse(&p).unwrap();
        let a = pk.dict_get(&pk.root, "a").unwrap();
        let Some(Object::List(items)) = pk.object(a) else {
            panic!()
        };
        assert_eq!(
            items,
            &[
                Value::Int(1),
                Value::Int(-5),
                Value::Float(1.5),
                Value::Bool(true),
                Value::None
            ]
        );
        let b = pk.dict_get(&pk.root, "b").unwrap();
        assert_eq!(
            pk.object(b),
            Some(&Object::Tuple(vec![Value::Int(300), Value::Int(70000)]))
        );
    }

    #[test]
    fn memo_keeps_aliasing() {
        // d = {}; memo[0] = d; outer = [d]; d['x'] = 1 (after being memoised); outer.append(memo[0])
        let mut p = vec![0x80, 2, b']', b'}', b'q', 0, b'a', b'h', 0];
        p.extend(unicode("x"));
        p.extend([b'K', 1, b's', b'0', b'h', 0, b'a', b'.']);
        let pk = parse(&p).unwrap();
        let Some(Object::List(items)) = pk.object(&pk.root) else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0], items[1]);
        assert_eq!(pk.dict_get(&items[1], "x"), Some(&Value::Int(1)));
    }

    #[test]
    fn long1_decodes_small_and_big() {
        let p = [0x80, 2, 0x8a, 2, 0xff, 0x7f, b'.'];
        assert_eq!(parse(&p).unwrap().root, Value::Int(0x7fff));
        let p = [0x80, 2, 0x8a, 1, 0xfb, b'.'];
        assert_eq!(parse(&p).unwrap().root, Value::Int(-5));
        let p = [0x80, 2, 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'.'];
        assert!(matches!(parse(&p).unwrap().root, Value::BigInt(_)));
        let p = [
            0x80, 2, 0x8a, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'.',
        ];
        assert_eq!(parse(&p).unwrap().root, Value::Int(-1));
    }

    #[test]
    fn refuses_code_execution_globals() {
        for (m, n, full) in [
            ("os", "system", "os.system"),
            ("posix", "system", "posix.system"),
            ("nt", "system", "nt.system"),
            ("subprocess", "Popen", "subprocess.Popen"),
            ("builtins", "eval", "builtins.eval"),
            ("__builtin__", "exec", "builtins.exec"),
            ("builtins", "getattr", "builtins.getattr"),
            ("torch.serialization", "load", "torch.serialization.load"),
        ] {
            let p = cat(&[&[0x80, 2], &global(m, n), &unicode("echo pwned"), &[0x85, b'R', b'.']]);
            let err = parse(&p).unwrap_err();
            assert_eq!(
                err,
                PickleError::Unsafe {
                    global: full.into(),
                    code_execution: true
                },
                "{full}"
            );
            assert_eq!(
                err.to_string(),
                format!("the pickle asks to call {full} (code execution)")
            );
        }
    }

    #[test]
    fn refuses_stack_global_and_inst() {
        // Protocol 4: STACK_GLOBAL from two strings.
        let mut p = vec![0x80, 4, 0x8c, 5];
        p.extend(b"posix");
        p.extend([0x8c, 6]);
        p.extend(b"system");
        p.extend([0x93, b'.']);
        let err = parse(&p).unwrap_err();
        assert!(matches!(err, PickleError::Unsafe { ref global, code_execution: true } if global == "posix.system"));
        // Protocol 0: INST.
        let p = b"(S'echo \\'pwned\\''\nios\nsystem\n.";
        let err = parse(p).unwrap_err();
        assert!(
            matches!(err, PickleError::Unsafe { ref global, .. } if global == "os.system"),
            "{err}"
        );
    }

    #[test]
    fn refuses_unknown_classes_without_calling_them_code() {
        let p = cat(&[&[0x80, 2], &global("mypkg.models", "VAE"), &[b')', 0x81, b'.']]);
        let err = parse(&p).unwrap_err();
        assert_eq!(
            err,
            PickleError::Unsafe {
                global: "mypkg.models.VAE".into(),
                code_execution: false
            }
        );
        assert!(err.to_string().contains("not on the allowlist"));
    }

    #[test]
    fn inert_objects_are_kept_opaque() {
        // argparse.Namespace(lr=0.5) as protocol 2 writes it: NEWOBJ then BUILD with a dict.
        let mut p = cat(&[&[0x80, 2], &global("argparse", "Namespace"), &[b')', 0x81, b'}']]);
        p.extend(unicode("lr"));
        p.push(b'G');
        p.extend(0.5f64.to_be_bytes());
        p.extend([b's', b'b', b'.']);
        let pk = parse(&p).unwrap();
        let Some(Object::Opaque {
            class,
            state: Some(state),
            ..
        }) = pk.object(&pk.root)
        else {
            panic!()
        };
        assert_eq!(&**class, "argparse.Namespace");
        assert_eq!(pk.dict_get(state, "lr"), Some(&Value::Float(0.5)));
    }

    #[test]
    fn rebuilds_a_tensor_reference() {
        let mut p = vec![0x80, 2];
        p.extend(global("torch._utils", "_rebuild_tensor_v2"));
        p.extend([b'(', b'(']);
        p.extend(unicode("storage"));
        p.extend(global("torch", "HalfStorage"));
        p.extend(unicode("0"));
        p.extend(unicode("cpu"));
        p.extend([
            b'K', 6, b't', b'Q', b'K', 1, b'K', 2, b'K', 2, 0x86, b'K', 1, b'K', 2, 0x86, 0x89,
        ]);
        p.extend(global("collections", "OrderedDict"));
        p.extend([b')', b'R', b't', b'R', b'.']);
        let pk = parse(&p).unwrap();
        let t = pk.tensor(&pk.root).unwrap();
        assert_eq!(t.dtype, TorchDtype::F16);
        assert_eq!(t.offset, 1);
        assert_eq!(t.size, vec![2, 2]);
        assert_eq!(t.stride, vec![1, 2]);
        assert_eq!(&*t.storage.key, "0");
        assert_eq!(t.storage.nbytes(), Some(12));
    }

    #[test]
    fn hostile_lengths_and_structure_are_errors() {
        // BINUNICODE claiming 4 GiB.
        assert!(matches!(
            parse(&[0x80, 2, b'X', 0xff, 0xff, 0xff, 0xff, b'a']),
            Err(PickleError::Truncated { .. })
        ));
        // BINBYTES8 claiming 2^64-1.
        let mut p = vec![0x8e];
        p.extend(u64::MAX.to_le_bytes());
        assert!(matches!(parse(&p), Err(PickleError::Truncated { .. })));
        // Stack underflow, memo miss, no STOP, empty input.
        assert!(matches!(parse(b"0."), Err(PickleError::Malformed { .. })));
        assert!(matches!(parse(b"h\x05."), Err(PickleError::Malformed { .. })));
        assert!(matches!(parse(b"N"), Err(PickleError::Truncated { .. })));
        assert!(matches!(parse(b""), Err(PickleError::Truncated { .. })));
        // A pop below the current MARK.
        assert!(matches!(parse(b"N(0."), Err(PickleError::Malformed { .. })));
        // SETITEM on a list, APPEND on a dict.
        assert!(matches!(parse(b"]NNs."), Err(PickleError::Unsupported { .. })));
        assert!(matches!(parse(b"}Na."), Err(PickleError::Unsupported { .. })));
        // Unknown opcode.
        assert!(matches!(
            parse(&[0xfe]),
            Err(PickleError::UnsupportedOpcode { opcode: 0xfe, .. })
        ));
    }

    #[test]
    fn limits_bound_the_stack_and_memo() {
        let limits = Limits {
            max_stack: 8,
            ..Limits::default()
        };
        let p = [b'N'; 9];
        assert!(matches!(parse_with_limits(&p, limits), Err(PickleError::Limit { .. })));
        let limits = Limits {
            max_memo: 2,
            ..Limits::default()
        };
        let p = b"N\x94\x94\x94.";
        assert!(matches!(parse_with_limits(p, limits), Err(PickleError::Limit { .. })));
        let limits = Limits {
            max_marks: 2,
            ..Limits::default()
        };
        assert!(matches!(
            parse_with_limits(b"(((", limits),
            Err(PickleError::Limit { .. })
        ));
        let limits = Limits {
            max_objects: 2,
            ..Limits::default()
        };
        assert!(matches!(
            parse_with_limits(b"]]].", limits),
            Err(PickleError::Limit { .. })
        ));
    }

    #[test]
    fn protocol_0_text_opcodes() {
        // pickle.dumps({'a': 1.5, 'b': 'x\u00e9', 'c': [1, True, None], 'd': b'q'}, protocol=0)
        let p = b"(dp0\nVa\np1\nF1.5\nsVb\np2\nVx\xe9\np3\nsVc\np4\n(lp5\nI1\naI01\naNasVd\np6\nc_codecs\nencode\np7\n(Vq\np8\nVlatin1\np9\ntp10\nRp11\ns.";
        let pk = parse(p).unwrap();
        assert_eq!(pk.dict_get(&pk.root, "a"), Some(&Value::Float(1.5)));
        assert_eq!(pk.dict_get(&pk.root, "b"), Some(&Value::Str(Rc::from("x\u{e9}"))));
        let c = pk.dict_get(&pk.root, "c").unwrap();
        assert_eq!(
            pk.object(c),
            Some(&Object::List(vec![Value::Int(1), Value::Bool(true), Value::None]))
        );
        assert_eq!(pk.dict_get(&pk.root, "d"), Some(&Value::Bytes(Rc::from(&b"q"[..]))));
    }

    #[test]
    fn protocol_2_bytes_via_codecs_encode() {
        let p = cat(&[
            &[0x80, 2],
            &global("_codecs", "encode"),
            &unicode("\u{ff}a"),
            &unicode("latin1"),
            &[0x86, b'R', b'.'],
        ]);
        assert_eq!(parse(&p).unwrap().root, Value::Bytes(Rc::from(&[0xffu8, b'a'][..])));
    }
}
