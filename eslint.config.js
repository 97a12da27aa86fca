import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import expectExpect from './eslint/expect-expect.js';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.kafka-local/', 'coverage/', '.cache/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: false }],
    },
  },
  {
    // One door to Kafka: kafkajs's classes, types and errors stay behind src/shared/kafka/ (its errors are classified
    // in src/shared/kafka/errors.ts). test/ and bench/ may use kafkajs where they fake or measure the raw client.
    files: ['src/**/*.ts'],
    ignores: ['src/shared/kafka/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'kafkajs', message: 'Only src/shared/kafka/ imports kafkajs.' }],
          patterns: [{ group: ['kafkajs/*'], message: 'Only src/shared/kafka/ imports kafkajs.' }],
        },
      ],
    },
  },
  {
    // One door to OpenTelemetry: its SDK stays behind src/shared/tracing.ts, whose no-op tracing costs nothing per
    // fire or task when --otel-endpoint is not set (a separate rule name, so the kafkajs rule above still applies).
    files: ['src/**/*.ts'],
    ignores: ['src/shared/tracing.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@opentelemetry/*'], message: 'Only src/shared/tracing.ts imports OpenTelemetry.' },
          ],
        },
      ],
    },
  },
  {
    // Every test asserts (a test that only waits cannot fail on a wrong outcome).
    files: ['test/**/*.test.ts'],
    plugins: { local: { rules: { 'expect-expect': expectExpect } } },
    rules: { 'local/expect-expect': 'error' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    // The dashboard runs in the browser.
    files: ['src/api/ui/**/*.js'],
    languageOptions: {
      globals: {
        document: 'readonly',
        window: 'readonly',
        location: 'readonly',
        sessionStorage: 'readonly',
        fetch: 'readonly',
        FormData: 'readonly',
        confirm: 'readonly',
        atob: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
      },
    },
  },
);
