// Logs never carry a secret, however deep it sits or however the request sends it.
import { call, startTestApp, LogCapture } from '../helpers/app';
import { createLogger, SECRET_FIELDS } from '../../shared/logger';
import { parseConfig } from '../../shared/config';

const SECRET = 'S3cr3t-value-that-must-never-be-logged';

test('every secret field is redacted at any depth', () => {
  const capture = new LogCapture();
  const logger = createLogger(parseConfig({ LOG_LEVEL: 'trace' }), capture);
  for (const field of SECRET_FIELDS) {
    logger.info({ [field]: SECRET }, 'top');
    logger.info({ req: { [field]: SECRET } }, 'one deep');
    logger.info({ req: { headers: { [field]: SECRET } } }, 'two deep');
    logger.info({ a: { b: { c: { [field]: SECRET } } } }, 'three deep');
  }
  expect(capture.lines.length).toBe(SECRET_FIELDS.length * 4);
  expect(capture.text).not.toContain(SECRET);
  expect(capture.text).toContain('[redacted]');
});

test('requests carrying credentials leave no trace of them in the logs', async () => {
  const t = await startTestApp();
  try {
    await call(`${t.url}/health/live`, { headers: { Authorization: `Bearer ${SECRET}`, Cookie: `__Secure-refresh_token=${SECRET}` } });
    await call(`${t.url}/admin/login`, { body: { email: 'ops@example.com', password: SECRET } });
    await call(`${t.url}/admin/queues`, { headers: { Cookie: `__Secure-operator_session=${SECRET}` } });
    await call(`${t.url}/v1/nothing`, { body: { password: SECRET, refresh_token: SECRET, api_secret: SECRET } });
    await call(`${t.url}/health/live?token=${SECRET}`);
    expect(t.logs.lines.length).toBeGreaterThan(0);
    expect(t.logs.text).not.toContain(SECRET);
    expect(t.logs.text).not.toContain(Buffer.from(`ops@example.com:${SECRET}`).toString('base64'));
  } finally {
    await t.close();
  }
});
