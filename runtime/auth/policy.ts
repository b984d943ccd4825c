/** Route policies: who may call. 401 when the caller is unknown, 403 when known but not allowed. */
import type { Policy } from "../../config/fields";
import { PlinthError } from "../errors";
import type { Identity } from "./identity";

export function authorize(policy: Policy, identity: Identity | null): void {
  if (policy === "public") return;
  if (!identity) throw new PlinthError("PLT_UNAUTHENTICATED", "authentication required: send Authorization: Bearer <token or API key>", { data: { reason: "missing" } });
  if (policy === "authenticated") return;
  if (!identity.roles.some((role) => policy.includes(role))) {
    throw new PlinthError("PLT_FORBIDDEN", `requires one of the roles ${policy.join(", ")}`, { data: { roles: policy } });
  }
}
