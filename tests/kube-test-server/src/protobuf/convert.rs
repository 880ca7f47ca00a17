//! Conversion of decoded k8s-pb (prost) messages into k8s-openapi values, whose serde form is
//! the JSON the server stores.
//!
//! Every message pair is written with [`convert!`], which destructures the prost struct and
//! builds the k8s-openapi struct without `..`, so a field missing on either side is a compile
//! error. Leaf values go through [`Conv`]. Zero values follow Go's JSON encoding: protobuf
//! carries no presence for Go's non-pointer fields (a Go client always encodes them, even when
//! empty), so an empty string, `0` or `false` there becomes "absent", as `omitempty` would make
//! it. Fields marked `[keep]` are Go pointers (or lack `omitempty`), where a zero is a real value
//! (`replicas: 0`, `automountServiceAccountToken: false`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, MicroTime, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use k8s_pb::apimachinery::pkg::api::resource as pb_resource;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::util::intstr as pb_intstr;

/// Why a decoded body cannot be stored: the message carries something the JSON model cannot
/// represent.
#[derive(Debug, PartialEq)]
pub struct Refusal(pub String);

pub type Converted<T> = Result<T, Refusal>;

/// Converts a decoded protobuf value into its JSON-model counterpart.
pub trait Conv<T> {
    fn conv(self) -> Converted<T>;
}

/// A scalar whose zero value is meaningful (see the module docs).
pub struct Keep<T>(pub T);

/// Protobuf scalars as prost decodes them (`Option` because the Kubernetes protos are proto2).
pub trait Scalar: Default + PartialEq {}
impl Scalar for String {}
impl Scalar for i32 {}
impl Scalar for i64 {}
impl Scalar for bool {}

impl<S: Scalar> Conv<S> for Option<S> {
    fn conv(self) -> Converted<S> {
        Ok(self.unwrap_or_default())
    }
}

impl<S: Scalar> Conv<Option<S>> for Option<S> {
    fn conv(self) -> Converted<Option<S>> {
        Ok(self.filter(|v| *v != S::default()))
    }
}

impl<S: Scalar> Conv<Option<S>> for Keep<Option<S>> {
    fn conv(self) -> Converted<Option<S>> {
        Ok(self.0)
    }
}

/// Repeated scalars and map values arrive without the `Option`.
impl<S: Scalar> Conv<S> for S {
    fn conv(self) -> Converted<S> {
        Ok(self)
    }
}

impl<P: Conv<T>, T> Conv<Vec<T>> for Vec<P> {
    fn conv(self) -> Converted<Vec<T>> {
        self.into_iter().map(Conv::conv).collect()
    }
}

/// Protobuf cannot tell an empty list from an unset one; Go's JSON omits both.
impl<P: Conv<T>, T> Conv<Option<Vec<T>>> for Vec<P> {
    fn conv(self) -> Converted<Option<Vec<T>>> {
        if self.is_empty() {
            return Ok(None);
        }
        self.conv().map(Some)
    }
}

impl<P: Conv<T>, T> Conv<Option<BTreeMap<String, T>>> for BTreeMap<String, P> {
    fn conv(self) -> Converted<Option<BTreeMap<String, T>>> {
        if self.is_empty() {
            return Ok(None);
        }
        self.into_iter()
            .map(|(k, v)| Ok((k, v.conv()?)))
            .collect::<Converted<_>>()
            .map(Some)
    }
}

/// Secret and ConfigMap binary values (base64 strings in JSON).
impl Conv<ByteString> for Vec<u8> {
    fn conv(self) -> Converted<ByteString> {
        Ok(ByteString(self))
    }
}

impl Conv<Quantity> for pb_resource::Quantity {
    fn conv(self) -> Converted<Quantity> {
        Ok(Quantity(self.string.unwrap_or_default()))
    }
}

impl Conv<Option<Quantity>> for Option<pb_resource::Quantity> {
    fn conv(self) -> Converted<Option<Quantity>> {
        self.map(Conv::conv).transpose()
    }
}

impl Conv<IntOrString> for Option<pb_intstr::IntOrString> {
    fn conv(self) -> Converted<IntOrString> {
        let v = self.unwrap_or_default();
        match v.r#type.unwrap_or_default() {
            0 => Ok(IntOrString::Int(v.int_val.unwrap_or_default())),
            1 => Ok(IntOrString::String(v.str_val.unwrap_or_default())),
            t => Err(Refusal(format!("impossible IntOrString.Type {t}"))),
        }
    }
}

impl Conv<Option<IntOrString>> for Option<pb_intstr::IntOrString> {
    fn conv(self) -> Converted<Option<IntOrString>> {
        self.map(|v| Some(v).conv()).transpose()
    }
}

/// Go encodes a zero `metav1.Time` as an empty message and decodes an empty message as zero,
/// which JSON renders as null. `Time` has whole seconds on the wire and in JSON (Go drops the
/// nanoseconds on decode); `MicroTime` keeps them.
fn timestamp(
    seconds: Option<i64>,
    nanos: Option<i32>,
) -> Converted<Option<k8s_openapi::jiff::Timestamp>> {
    if seconds.is_none() && nanos.is_none() {
        return Ok(None);
    }
    let (s, n) = (seconds.unwrap_or_default(), nanos.unwrap_or_default());
    k8s_openapi::jiff::Timestamp::new(s, n)
        .map(Some)
        .map_err(|e| Refusal(format!("invalid timestamp {s}s {n}ns: {e}")))
}

impl Conv<Option<Time>> for Option<pb_meta::Time> {
    fn conv(self) -> Converted<Option<Time>> {
        let Some(pb_meta::Time { seconds, nanos }) = self else {
            return Ok(None);
        };
        Ok(timestamp(seconds, nanos.map(|_| 0))?.map(Time))
    }
}

/// Required times (`conditions[].lastTransitionTime`, PodDisruptionBudget `disruptedPods`
/// values): the JSON model has no null for them.
impl Conv<Time> for Option<pb_meta::Time> {
    fn conv(self) -> Converted<Time> {
        let t: Option<Time> = self.conv()?;
        t.ok_or_else(|| {
            Refusal("a required Time (lastTransitionTime, disruptedPods) is not set".into())
        })
    }
}

impl Conv<Time> for pb_meta::Time {
    fn conv(self) -> Converted<Time> {
        Some(self).conv()
    }
}

impl Conv<Option<MicroTime>> for Option<pb_meta::MicroTime> {
    fn conv(self) -> Converted<Option<MicroTime>> {
        let Some(pb_meta::MicroTime { seconds, nanos }) = self else {
            return Ok(None);
        };
        Ok(timestamp(seconds, nanos)?.map(MicroTime))
    }
}

/// Required times (events.k8s.io `eventTime`, `series.lastObservedTime`): the JSON model has
/// no null for them, and the real server rejects a zero one too.
impl Conv<MicroTime> for Option<pb_meta::MicroTime> {
    fn conv(self) -> Converted<MicroTime> {
        let t: Option<MicroTime> = self.conv()?;
        t.ok_or_else(|| {
            Refusal("a required MicroTime (eventTime, series.lastObservedTime) is not set".into())
        })
    }
}

/// `managedFields[].fieldsV1` is JSON carried as bytes.
impl Conv<Option<FieldsV1>> for Option<pb_meta::FieldsV1> {
    fn conv(self) -> Converted<Option<FieldsV1>> {
        let Some(pb_meta::FieldsV1 { raw }) = self else {
            return Ok(None);
        };
        let raw = raw.unwrap_or_default();
        if raw.is_empty() {
            return Ok(Some(FieldsV1(
                serde_json::Value::Object(Default::default()),
            )));
        }
        serde_json::from_slice(&raw)
            .map(|v| Some(FieldsV1(v)))
            .map_err(|e| Refusal(format!("managedFields fieldsV1 is not JSON: {e}")))
    }
}

/// A field of the protobuf message that the JSON model (Kubernetes 1.34) does not have.
pub trait IsSet {
    fn is_set(&self) -> bool;
}

impl<T> IsSet for Option<T> {
    fn is_set(&self) -> bool {
        self.is_some()
    }
}

impl<K, V> IsSet for BTreeMap<K, V> {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}

pub fn refuse_set(message: &str, field: &str, value: &impl IsSet) -> Converted<()> {
    if !value.is_set() {
        return Ok(());
    }
    Err(Refusal(format!(
        "{message}.{} is not supported by this server (its API is Kubernetes 1.34)",
        json_name(field)
    )))
}

/// `workload_ref` → `workloadRef`
fn json_name(field: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// One field value: `[keep]` keeps a zero scalar.
macro_rules! field {
    ($v:ident) => {
        $crate::protobuf::convert::Conv::conv($v)?
    };
    ($v:ident, keep) => {
        $crate::protobuf::convert::Conv::conv($crate::protobuf::convert::Keep($v))?
    };
}

/// `Pb => Oa { fields; renamed: oa = pb; refused: pb_only; absent: oa_only;
/// embedded pb_field: PbInner { fields } }` (sections optional, in this order). `embedded` is a
/// Go struct embedded inline (`json:",inline"`): its fields sit in the outer JSON object. `absent`
/// fields are set by the caller (`apiVersion`/`kind` of DeleteOptions come from the envelope).
macro_rules! convert {
    ($(
        $pbm:ident::$pb:ident => $oam:ident::$oa:ident {
            $($f:ident $([$m:ident])?),* $(,)?
            $(; renamed: $($of:ident = $pf:ident $([$rm:ident])?),* $(,)?)?
            $(; refused: $($x:ident),* $(,)?)?
            $(; absent: $($a:ident),* $(,)?)?
            $(; embedded $e:ident: $epm:ident::$ep:ident {
                $($ef:ident $([$em:ident])?),* $(,)?
            })*
        }
    )*) => {$(
        impl $crate::protobuf::convert::Conv<$oam::$oa> for $pbm::$pb {
            fn conv(self) -> $crate::protobuf::convert::Converted<$oam::$oa> {
                let $pbm::$pb { $($f,)* $($($pf,)*)? $($($x,)*)? $($e,)* } = self;
                $($(
                    $crate::protobuf::convert::refuse_set(stringify!($pb), stringify!($x), &$x)?;
                )*)?
                $(let $epm::$ep { $($ef,)* } = $e.unwrap_or_default();)*
                Ok($oam::$oa {
                    $($f: field!($f $(, $m)?),)*
                    $($($of: field!($pf $(, $rm)?),)*)?
                    $($($a: Default::default(),)*)?
                    $($($ef: field!($ef $(, $em)?),)*)*
                })
            }
        }

        impl $crate::protobuf::convert::Conv<Option<$oam::$oa>> for Option<$pbm::$pb> {
            fn conv(self) -> $crate::protobuf::convert::Converted<Option<$oam::$oa>> {
                self.map($crate::protobuf::convert::Conv::conv).transpose()
            }
        }

        /// A Go struct that is not a pointer is always on the wire; absent means empty.
        impl $crate::protobuf::convert::Conv<$oam::$oa> for Option<$pbm::$pb> {
            fn conv(self) -> $crate::protobuf::convert::Converted<$oam::$oa> {
                $crate::protobuf::convert::Conv::conv(self.unwrap_or_default())
            }
        }
    )*};
}

pub(crate) use {convert, field};
