// Lint: ESLint with typescript-eslint's recommended and type-aware rules (floating promises,
// unsafe any), Prettier for layout (eslint-config-prettier turns off what it decides), and the
// architecture's import rules: api and workers never import each other, and shared imports
// neither (DESIGN.md, "Shape").
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import globals from 'globals';

/** Relative imports that climb out of the file's folder into a top-level folder `api` or `workers`. */
const forbid = (files, folders, why) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: [{ regex: `^(\\.\\./)+(${folders.join('|')})(/|$)`, message: `${why} (DESIGN.md, "Shape").` }] },
    ],
  },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/tmp/**', 'bench/profiles/**', 'tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Unused arguments named with a leading underscore are deliberate (a handler's signature).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // `void promise` marks a promise we chose not to await.
      // knex's query builders are thenables that are built up in statements before one is awaited.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { ignoreVoid: true, allowForKnownSafePromises: [{ from: 'package', package: 'knex', name: 'QueryBuilder' }] },
      ],
      // Koa and BullMQ take async callbacks where they expect void.
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, properties: false } }],
    },
  },
  {
    // Tests and the bench read JSON answers as `any` on purpose (black-box assertions on what a
    // client receives); the product code may not.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['**/*.{js,cjs,mjs}'],
    ...tseslint.configs.disableTypeChecked,
  },
  forbid(['shared/**/*.ts'], ['api', 'workers'], 'shared/ is used by the api and the workers and imports neither'),
  forbid(['api/**/*.ts'], ['workers'], 'The api hands work to the workers through queues in shared/, never by import'),
  forbid(['workers/**/*.ts'], ['api'], 'Workers call the domain services in shared/, never the api'),
  prettier,
);
