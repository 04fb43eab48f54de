FROM node:22
WORKDIR /app
COPY package-lock.json package.json ./
RUN --mount=type=bind,source=scripts/setup.sh,target=/setup.sh sh /setup.sh && npm ci
COPY . .
