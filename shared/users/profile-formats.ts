// Formats of profile fields, registered with ajv so a bad value is refused at the edge with the
// field's name: phone numbers in E.164, real IANA time zones, BCP 47 locales, https URLs.

const TIME_ZONES = new Set(Intl.supportedValuesOf('timeZone'));
// Intl's list leaves out the canonical "UTC" and some links that are still valid zones.
const isTimeZone = (value: string): boolean => {
  if (TIME_ZONES.has(value) || value === 'UTC') return true;
  try {
    return (
      new Intl.DateTimeFormat('en-US', { timeZone: value }).resolvedOptions().timeZone.length > 0 &&
      /^[A-Za-z_]+(\/[A-Za-z0-9_+-]+)*$/.test(value)
    );
  } catch {
    return false;
  }
};

const isLocale = (value: string): boolean => {
  try {
    return Intl.getCanonicalLocales(value).length === 1;
  } catch {
    return false;
  }
};

const isHttpsUrl = (value: string): boolean => {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' && !!url.hostname && !url.username && !url.password;
  } catch {
    return false;
  }
};

export const PROFILE_FORMATS: Record<string, (value: string) => boolean> = {
  'e164-phone': (value) => /^\+[1-9]\d{6,14}$/.test(value),
  'iana-timezone': isTimeZone,
  'bcp47-locale': isLocale,
  'https-url': isHttpsUrl,
};
