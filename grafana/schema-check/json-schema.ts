// @grafana/schema types some fields as TypeScript string enums (ThresholdsMode, ...).
// A string literal never satisfies an enum type, even when it is the enum's value, yet
// JSON can only carry the value. `DashboardJson` is `Dashboard` with every enum replaced
// by the union of its values; every other constraint (required fields, unknown keys,
// literal types, nesting) is kept as is.
import type { Dashboard } from "@grafana/schema";

type Jsonify<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Jsonify<U>>
      : T extends object
        ? { [K in keyof T]: Jsonify<T[K]> }
        : T;

export type DashboardJson = Jsonify<Dashboard>;
