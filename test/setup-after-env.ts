// Runs around every test: a test whose requests got an answer that does not match the route's
// declared responses fails, naming the route, the status and what did not match.
import { failOnResponseMismatches } from './helpers/app';

afterEach(() => failOnResponseMismatches());
