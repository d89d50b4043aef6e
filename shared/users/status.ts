// Which account statuses may sign in and hold permissions: the one place that says so.
import type { UserStatus } from '../models';

/** Users who have not verified their email may sign in (DESIGN.md, "Unverified email"). */
export const SIGN_IN_STATUSES: readonly UserStatus[] = ['active', 'pending_verification'];

export const canSignIn = (status: UserStatus): boolean => SIGN_IN_STATUSES.includes(status);
