import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The API and the core never load the training engine or TensorFlow.js: untrusted work runs in
    // the pool's threads (workers/untrusted/tasks.ts), loaded by file name. docs/ARCHITECTURE.md.
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/workers', '**/workers/**'], message: 'src/ (API and core) must not import workers/ (the engine); run it in the untrusted-work pool or a worker.' },
          { group: ['@tensorflow/*'], message: 'src/ (API and core) must not import TensorFlow.js; it runs in workers/ only.' },
        ],
      }],
      '@typescript-eslint/no-require-imports': 'error',
    },
  },
  { files: ['**/*.js', '**/*.cjs'], languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly', process: 'readonly', __dirname: 'readonly' } } },
);
