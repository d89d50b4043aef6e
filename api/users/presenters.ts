// The account's answers, built field by field from what the services return.
import type { Profile, PublicProfile } from '../../shared/users/account';
import type { MeBody, PublicProfileBody } from './schemas';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function meBody({ user, roles, permissions, tradingAccounts, identities, hasPassword }: Profile): MeBody {
  return {
    id: user.id,
    email: user.email,
    email_verified: user.email_verified,
    name: user.name,
    phone: user.phone,
    timezone: user.timezone,
    locale: user.locale,
    avatar_url: user.avatar_url,
    status: user.status,
    mfa_enabled: user.mfa_enabled,
    roles,
    permissions,
    // Masked: never a credential.
    trading_accounts: tradingAccounts.map((a) => ({
      id: a.id,
      broker: a.broker,
      nickname: a.nickname,
      status: a.status,
      broker_user_id: a.broker_user_id,
      api_key_masked: a.api_key_masked,
      preferences: a.preferences,
      last_verified_at: iso(a.last_verified_at),
      created_at: a.created_at.toISOString(),
    })),
    created_at: user.created_at.toISOString(),
    identities: identities.map((i) => ({ provider: i.provider, email: i.email, linked_at: i.linkedAt.toISOString() })),
    has_password: hasPassword,
  };
}

export function publicProfileBody(profile: PublicProfile): PublicProfileBody {
  return { id: profile.id, name: profile.name, avatar_url: profile.avatar_url, created_at: profile.created_at.toISOString() };
}
