//! The little linear algebra the viewport needs: column-major 4×4 matrices as WGSL reads them
//! (`mat4x4<f32>` uniform = 16 floats, column after column), right-handed, depth in [0, 1].

pub type Vec3 = [f32; 3];
/// Column-major: `m[col][row]`.
pub type Mat4 = [[f32; 4]; 4];

pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub fn scale(a: Vec3, s: f32) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

pub fn dot(a: Vec3, b: Vec3) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub fn length(a: Vec3) -> f32 {
    dot(a, a).sqrt()
}

/// `a / |a|`, or `a` itself when it has no length (callers never pass a zero direction on purpose).
pub fn normalize(a: Vec3) -> Vec3 {
    let l = length(a);
    if l > 0.0 { scale(a, 1.0 / l) } else { a }
}

pub const IDENTITY: Mat4 = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

pub fn mul(a: &Mat4, b: &Mat4) -> Mat4 {
    let mut out = [[0.0; 4]; 4];
    for (c, col) in out.iter_mut().enumerate() {
        for (r, v) in col.iter_mut().enumerate() {
            *v = (0..4).map(|k| a[k][r] * b[c][k]).sum();
        }
    }
    out
}

/// `m · (p, 1)` with the perspective divide.
pub fn transform_point(m: &Mat4, p: Vec3) -> Vec3 {
    let v = [p[0], p[1], p[2], 1.0];
    let mut o = [0.0f32; 4];
    for (r, out) in o.iter_mut().enumerate() {
        *out = (0..4).map(|k| m[k][r] * v[k]).sum();
    }
    [o[0] / o[3], o[1] / o[3], o[2] / o[3]]
}

/// The view matrix of an eye at `eye` looking at `target` with `up` roughly up.
pub fn look_at(eye: Vec3, target: Vec3, up: Vec3) -> Mat4 {
    let f = normalize(sub(target, eye));
    let s = normalize(cross(f, up));
    let u = cross(s, f);
    [
        [s[0], u[0], -f[0], 0.0],
        [s[1], u[1], -f[1], 0.0],
        [s[2], u[2], -f[2], 0.0],
        [-dot(s, eye), -dot(u, eye), dot(f, eye), 1.0],
    ]
}

/// Right-handed perspective with depth mapped to [0, 1] (wgpu's clip space).
pub fn perspective(fov_y: f32, aspect: f32, near: f32, far: f32) -> Mat4 {
    let f = 1.0 / (fov_y / 2.0).tan();
    let r = far / (near - far);
    [
        [f / aspect, 0.0, 0.0, 0.0],
        [0.0, f, 0.0, 0.0],
        [0.0, 0.0, r, -1.0],
        [0.0, 0.0, r * near, 0.0],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_at_puts_the_target_on_the_negative_z_axis() {
        let v = look_at([3.0, 4.0, 5.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]);
        let t = transform_point(&v, [1.0, 1.0, 1.0]);
        let d = length(sub([3.0, 4.0, 5.0], [1.0, 1.0, 1.0]));
        assert!(
            t[0].abs() < 1e-5 && t[1].abs() < 1e-5 && (t[2] + d).abs() < 1e-5,
            "{t:?}"
        );
    }

    #[test]
    fn perspective_maps_near_and_far_to_zero_and_one() {
        let p = perspective(1.0, 1.5, 0.5, 10.0);
        assert!(transform_point(&p, [0.0, 0.0, -0.5])[2].abs() < 1e-6);
        assert!((transform_point(&p, [0.0, 0.0, -10.0])[2] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn mul_composes_in_order() {
        let t = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [1.0, 2.0, 3.0, 1.0],
        ];
        let s = [
            [2.0, 0.0, 0.0, 0.0],
            [0.0, 2.0, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        // t·s scales first, then translates.
        assert_eq!(transform_point(&mul(&t, &s), [1.0, 1.0, 1.0]), [3.0, 4.0, 5.0]);
        assert_eq!(mul(&IDENTITY, &t), t);
    }
}
